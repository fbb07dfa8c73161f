//! Domains, users and groups: who may open sessions, and who administers what.
//!
//! Names are validated here, once, into types that cannot hold a bad name: the state machine,
//! the API and the CLI all go through [`DomainName`], [`Login`] and [`UserAddress`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The longest domain, login or group name, in characters.
pub const MAX_NAME_CHARS: usize = 255;

/// The longest spelling read before it is normalised: room for a 255-character name written
/// decomposed (NFD) or as A-labels, and a bound on the work a hostile name can cause.
const MAX_INPUT_CHARS: usize = 4 * MAX_NAME_CHARS;

/// The group whose members administer their domain (the master domain's: everything).
pub const ADMINS_GROUP: &str = "admins";

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than 255 characters")]
    TooLong { what: &'static str },
    #[error("{what} {name:?} contains {found}, which is not allowed")]
    Forbidden {
        what: &'static str,
        name: String,
        found: String,
    },
    #[error("domain {0:?} is not a valid internationalised domain name (UTS #46)")]
    NotIdna(String),
    #[error("{0:?} is not of the form login@domain")]
    NotAnAddress(String),
}

/// The start of a refused name, for a message (`{:?}` escapes what it holds that is invisible).
fn shown(name: &str) -> String {
    name.chars().take(64).collect()
}

/// Why `c` may not be part of any name: the characters that do not show, or that change how
/// the text around them shows (reversed, split into lines), so that two names could look alike.
fn invisible(c: char) -> Option<&'static str> {
    use icu_properties::props::{BidiControl, DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    match category {
        GeneralCategory::Control => return Some("a control character (Cc)"),
        GeneralCategory::LineSeparator => return Some("a line separator (Zl)"),
        GeneralCategory::ParagraphSeparator => return Some("a paragraph separator (Zp)"),
        _ if c.is_whitespace() => return Some("whitespace"),
        _ => {}
    }
    if CodePointSetData::new::<BidiControl>().contains(c) {
        return Some("a bidirectional control");
    }
    if category == GeneralCategory::Format {
        return Some("a format character (Cf)");
    }
    if CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c) {
        return Some("an invisible (default-ignorable) character");
    }
    // An unassigned code point may be assigned as any of the above by a later Unicode.
    (category == GeneralCategory::Unassigned).then_some("an unassigned code point (Cn)")
}

fn check_chars(
    what: &'static str,
    name: &str,
    forbidden: &[(char, &'static str)],
) -> Result<(), NameError> {
    for c in name.chars() {
        let found = match forbidden.iter().find(|(f, _)| *f == c) {
            Some((_, label)) => label.to_string(),
            None => match invisible(c) {
                Some(class) => format!("U+{:04X} ({class})", u32::from(c)),
                None => continue,
            },
        };
        return Err(NameError::Forbidden {
            what,
            name: shown(name),
            found,
        });
    }
    Ok(())
}

fn check_length(what: &'static str, name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.chars().count() > max {
        return Err(NameError::TooLong { what });
    }
    Ok(())
}

/// A login or a group name as given, checked and composed (NFC), so that one name has one
/// spelling however the client's keyboard composed it.
fn nfc_name(
    what: &'static str,
    raw: &str,
    forbidden: &[(char, &'static str)],
) -> Result<String, NameError> {
    check_length(what, raw, MAX_INPUT_CHARS)?;
    check_chars(what, raw, forbidden)?;
    let composed = icu_normalizer::ComposingNormalizerBorrowed::new_nfc().normalize(raw);
    check_length(what, &composed, MAX_NAME_CHARS)?;
    check_chars(what, &composed, forbidden)?;
    Ok(composed.into_owned())
}

/// A domain as given, checked and mapped by UTS #46 to its Unicode form: lower case, NFC,
/// A-labels (`xn--…`) decoded, so that every spelling of one domain is the same domain.
fn idna_domain(raw: &str) -> Result<String, NameError> {
    const WHAT: &str = "domain";
    const FORBIDDEN: &[(char, &str)] = &[('@', "'@'"), ('/', "'/'")];
    check_length(WHAT, raw, MAX_INPUT_CHARS)?;
    check_chars(WHAT, raw, FORBIDDEN)?;
    let (mapped, valid) = idna::uts46::Uts46::new().to_unicode(
        raw.as_bytes(),
        idna::uts46::AsciiDenyList::EMPTY,
        idna::uts46::Hyphens::Allow,
    );
    valid.map_err(|_| NameError::NotIdna(shown(raw)))?;
    // Mapping may bring what the spelling did not show: a fullwidth solidus becomes '/'.
    check_length(WHAT, &mapped, MAX_NAME_CHARS)?;
    check_chars(WHAT, &mapped, FORBIDDEN)?;
    Ok(mapped.into_owned())
}

/// A domain name: non-empty, at most 255 characters, no `@`, no `/`, nothing invisible. Stored
/// in the Unicode form UTS #46 maps it to (lower case, NFC, A-labels decoded): `Bücher.example`
/// and `xn--bcher-kva.example` are one domain, `bücher.example`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DomainName(String);

impl DomainName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DomainName {
    type Err = NameError;
    fn from_str(name: &str) -> Result<Self, NameError> {
        idna_domain(name).map(Self)
    }
}

/// A login, unique in its domain: non-empty, at most 255 characters, no `/`, nothing invisible,
/// stored in NFC. Case is kept: `Alice` and `alice` are two logins.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Login(String);

impl Login {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Login {
    type Err = NameError;
    fn from_str(name: &str) -> Result<Self, NameError> {
        nfc_name("login", name, &[('/', "'/'")]).map(Self)
    }
}

/// A group's name, unique in its domain; the same rules as a login.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupName(String);

impl GroupName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for GroupName {
    type Err = NameError;
    fn from_str(name: &str) -> Result<Self, NameError> {
        nfc_name("group name", name, &[('/', "'/'")]).map(Self)
    }
}

macro_rules! string_conversions {
    ($($t:ty),*) => {$(
        /// Decoding (the log, snapshots, peers): a name is taken in its one spelling, and one
        /// that today's rules refuse is kept as it was stored, since earlier rules let it in;
        /// names that enter through a request go through `FromStr` and its refusals.
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Ok(s.parse().unwrap_or(Self(s)))
            }
        }
        impl From<$t> for String {
            fn from(name: $t) -> String {
                name.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
string_conversions!(DomainName, Login, GroupName);

/// `login@domain`, split at the last `@` (a domain never holds one).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserAddress {
    pub login: Login,
    pub domain: DomainName,
}

impl FromStr for UserAddress {
    type Err = NameError;
    fn from_str(address: &str) -> Result<Self, NameError> {
        let (login, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| NameError::NotAnAddress(shown(address)))?;
        Ok(Self {
            login: login.parse()?,
            domain: domain.parse()?,
        })
    }
}

impl fmt::Display for UserAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.login, self.domain)
    }
}

/// A group addressed as `name@domain`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupAddress {
    pub name: GroupName,
    pub domain: DomainName,
}

impl FromStr for GroupAddress {
    type Err = NameError;
    fn from_str(address: &str) -> Result<Self, NameError> {
        let (name, domain) = address
            .rsplit_once('@')
            .ok_or_else(|| NameError::NotAnAddress(shown(address)))?;
        Ok(Self {
            name: name.parse()?,
            domain: domain.parse()?,
        })
    }
}

impl fmt::Display for GroupAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.domain)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub name: DomainName,
    pub created_at_ms: u64,
    /// How many sessions one user of the domain may have open, over the sites that answer.
    #[serde(default)]
    pub session_limit: Option<SessionLimit>,
}

/// A domain's cap on each user's open sessions, and what the login over it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionLimit {
    pub max_sessions_per_user: u32,
    pub on_limit: OnLimit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// The new login is refused (403).
    Refuse,
    /// The user's oldest sessions end (reason `limit`) to make room.
    EndOldest,
}

/// A user. `password_hash` is an argon2id PHC string; it never leaves the node in an answer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user_id: Uuid,
    pub domain: DomainName,
    pub login: Login,
    pub password_hash: String,
    pub properties: BTreeMap<String, String>,
    pub disabled: bool,
    pub created_at_ms: u64,
}

impl User {
    pub fn address(&self) -> UserAddress {
        UserAddress {
            login: self.login.clone(),
            domain: self.domain.clone(),
        }
    }
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("user_id", &self.user_id)
            .field("domain", &self.domain)
            .field("login", &self.login)
            .field("password_hash", &"<redacted>")
            .field("properties", &self.properties)
            .field("disabled", &self.disabled)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: GroupName,
    pub domain: DomainName,
    pub members: BTreeSet<Uuid>,
    pub properties: BTreeMap<String, String>,
}

/// Property changes: a value sets, `None` deletes.
pub type PropertyChanges = BTreeMap<String, Option<String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_decode_in_their_one_spelling_and_are_never_refused() {
        let decode =
            |s: &str| -> DomainName { serde_json::from_value(serde_json::json!(s)).unwrap() };
        assert_eq!(decode("xn--bcher-kva.example").as_str(), "bücher.example");
        let stored_before = "zero\u{200B}width.example";
        assert!(stored_before.parse::<DomainName>().is_err());
        assert_eq!(decode(stored_before).as_str(), stored_before);
        let login: Login = serde_json::from_value(serde_json::json!("e\u{301}lodie")).unwrap();
        assert_eq!(login.as_str(), "élodie");
    }

    #[test]
    fn domains_follow_james_rules() {
        assert_eq!(
            "Example.ORG".parse::<DomainName>().unwrap().as_str(),
            "example.org"
        );
        assert!("exämple.org".parse::<DomainName>().is_ok());
        for bad in ["", "a@b", "a/b", "a b", "tab\there", "nul\0"] {
            assert!(bad.parse::<DomainName>().is_err(), "{bad:?} accepted");
        }
        assert!("d".repeat(255).parse::<DomainName>().is_ok());
        assert_eq!(
            "d".repeat(256).parse::<DomainName>(),
            Err(NameError::TooLong { what: "domain" })
        );
    }

    #[test]
    fn logins_follow_sling_rules() {
        assert!("élodie.o'neil+x".parse::<Login>().is_ok());
        assert_eq!("Alice".parse::<Login>().unwrap().as_str(), "Alice");
        for bad in ["", "a/b", "a b", "new\nline"] {
            assert!(bad.parse::<Login>().is_err(), "{bad:?} accepted");
        }
        assert!("l".repeat(256).parse::<Login>().is_err());
    }

    #[test]
    fn invisible_characters_are_refused_and_named() {
        let cases = [
            ("ali\u{200B}ce", "format character (Cf)"),
            ("alice\u{202E}", "bidirectional control"),
            ("ali\u{2066}ce", "bidirectional control"),
            ("\u{FEFF}alice", "format character (Cf)"),
            ("ali\u{00AD}ce", "format character (Cf)"),
            ("ali\u{2028}ce", "line separator (Zl)"),
            ("ali\u{2029}ce", "paragraph separator (Zp)"),
            ("ali\u{0085}ce", "control character (Cc)"),
            ("ali\u{3164}ce", "invisible (default-ignorable)"),
            ("ali\u{FE0F}ce", "invisible (default-ignorable)"),
            ("ali\u{E0041}ce", "format character (Cf)"),
            ("ali\u{0378}ce", "unassigned code point (Cn)"),
        ];
        for (name, class) in cases {
            let login = name.parse::<Login>().unwrap_err().to_string();
            assert!(login.contains(class), "{name:?}: {login}");
            let group = name.parse::<GroupName>().unwrap_err().to_string();
            assert!(group.contains(class), "{name:?}: {group}");
            let domain = format!("{name}.example").parse::<DomainName>();
            let domain = domain.unwrap_err().to_string();
            assert!(domain.contains(class), "{name:?}: {domain}");
        }
        let reversed = "alice\u{202E}txt.exe".parse::<Login>().unwrap_err();
        let message = reversed.to_string();
        assert!(message.contains("U+202E"), "{message}");
        assert!(
            !message.contains('\u{202E}'),
            "the message holds the override: {message}"
        );
    }

    #[test]
    fn logins_and_group_names_are_nfc() {
        let composed = "\u{00E9}lodie".parse::<Login>().unwrap();
        let decomposed = "e\u{0301}lodie".parse::<Login>().unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(decomposed.as_str(), "\u{00E9}lodie");
        let group = "e\u{0301}quipe".parse::<GroupName>().unwrap();
        assert_eq!(group.as_str(), "\u{00E9}quipe");
        assert_eq!("Alice".parse::<Login>().unwrap().as_str(), "Alice");
    }

    #[test]
    fn domains_are_idna_and_every_spelling_is_the_same_domain() {
        let spellings = [
            "B\u{00FC}cher.example",
            "bu\u{0308}cher.example",
            "xn--bcher-kva.example",
            "XN--BCHER-KVA.Example",
            "B\u{00DC}CHER.EXAMPLE",
        ];
        for spelling in spellings {
            let domain = spelling.parse::<DomainName>().unwrap();
            assert_eq!(domain.as_str(), "b\u{00FC}cher.example", "{spelling:?}");
        }
        assert_eq!(
            "\u{FF21}cme.example"
                .parse::<DomainName>()
                .unwrap()
                .as_str(),
            "acme.example"
        );
        for bad in ["xn--zz-.example", "xn--a.example", "xn--ab-c-.example"] {
            let refused = bad.parse::<DomainName>();
            assert!(
                matches!(refused, Err(NameError::NotIdna(_))),
                "{bad:?}: {refused:?}"
            );
        }
        assert!(matches!(
            "a\u{FF0F}b.example".parse::<DomainName>(),
            Err(NameError::Forbidden { .. })
        ));
        assert!("master.domain".parse::<DomainName>().is_ok());
        assert!("under_score.example".parse::<DomainName>().is_ok());
    }

    #[test]
    fn addresses_split_at_the_last_at() {
        let a: UserAddress = "first@last@Example.org".parse().unwrap();
        assert_eq!(a.login.as_str(), "first@last");
        assert_eq!(a.domain.as_str(), "example.org");
        assert_eq!(a.to_string(), "first@last@example.org");
        assert!(matches!(
            "nodomain".parse::<UserAddress>(),
            Err(NameError::NotAnAddress(_))
        ));
        assert!("alice@".parse::<UserAddress>().is_err());
        assert!("@example.org".parse::<UserAddress>().is_err());
    }

    #[test]
    fn a_user_debug_print_hides_the_hash() {
        let user = User {
            user_id: Uuid::nil(),
            domain: "d".parse().unwrap(),
            login: "l".parse().unwrap(),
            password_hash: "$argon2id$secret".into(),
            properties: BTreeMap::new(),
            disabled: false,
            created_at_ms: 0,
        };
        assert!(!format!("{user:?}").contains("argon2id"));
    }
}

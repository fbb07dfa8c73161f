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
        found: &'static str,
    },
    #[error("{0:?} is not of the form login@domain")]
    NotAnAddress(String),
}

fn check(
    what: &'static str,
    name: &str,
    forbidden: &[(char, &'static str)],
) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty { what });
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong { what });
    }
    let refuse = |found| {
        Err(NameError::Forbidden {
            what,
            name: name.chars().take(64).collect(),
            found,
        })
    };
    for c in name.chars() {
        if c.is_whitespace() {
            return refuse("whitespace");
        }
        if c.is_control() {
            return refuse("a control character");
        }
        if let Some((_, label)) = forbidden.iter().find(|(f, _)| *f == c) {
            return refuse(label);
        }
    }
    Ok(())
}

/// A domain name: non-empty, at most 255 characters, no `@`, no `/`, no whitespace. Stored in
/// lower case, as domains compare without case.
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
        check("domain", name, &[('@', "'@'"), ('/', "'/'")])?;
        Ok(Self(name.to_lowercase()))
    }
}

/// A login, unique in its domain: non-empty, at most 255 characters, no `/`, no whitespace.
/// Case is kept: `Alice` and `alice` are two logins.
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
        check("login", name, &[('/', "'/'")])?;
        Ok(Self(name.to_string()))
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
        check("group name", name, &[('/', "'/'")])?;
        Ok(Self(name.to_string()))
    }
}

macro_rules! string_conversions {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                s.parse()
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
            .ok_or_else(|| NameError::NotAnAddress(address.chars().take(64).collect()))?;
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
            .ok_or_else(|| NameError::NotAnAddress(address.chars().take(64).collect()))?;
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
    fn names_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<DomainName>("\"a@b\"").is_err());
        assert!(serde_json::from_str::<Login>("\"ok\"").is_ok());
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

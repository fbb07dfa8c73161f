//! The `sites` parameter: `"current"` (the default), `"all"`, or a list of site names, as JSON
//! text in a query string (the bare words `current` and `all` too) or as a JSON value in a body.
//! Names are checked against the configured sites before anything runs.

use std::collections::BTreeSet;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteSelector {
    Current,
    All,
    Named(BTreeSet<String>),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("sites must be \"current\", \"all\" or a JSON list of site names such as [\"{example}\"]; known sites: {known}")]
    Malformed { example: String, known: String },
    #[error("sites names no site; known sites: {known}")]
    Empty { known: String },
    #[error("unknown site {name:?}; known sites: {known}")]
    Unknown { name: String, known: String },
    #[error("a request forwarded from another site may name only this site ({current})")]
    Forwarded { current: String },
}

/// A body's `sites` field as it was sent: absent is `None`, `null` is `Some(Value::Null)` (serde
/// would make both `None`), so that `null` can be refused.
pub fn sites_as_sent<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    <Value as serde::Deserialize>::deserialize(deserializer).map(Some)
}

/// Where a request runs: here, and at which other sites.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub local: bool,
    /// The other selected sites, in name order.
    pub remote: Vec<String>,
}

impl Plan {
    /// Every selected site, in name order.
    pub fn sites(&self, current: &str) -> Vec<String> {
        let mut all = self.remote.clone();
        if self.local {
            all.push(current.to_string());
            all.sort();
        }
        all
    }
}

/// The deployment's sites as this node knows them.
#[derive(Clone, Debug)]
pub struct Sites {
    pub current: String,
    pub known: BTreeSet<String>,
}

impl Sites {
    /// A deployment of one site.
    pub fn single(current: &str) -> Self {
        Self {
            current: current.to_string(),
            known: BTreeSet::from([current.to_string()]),
        }
    }

    /// The deployment's sites from the configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let mut sites = Self::single(&config.site);
        sites
            .known
            .extend(config.sites.iter().map(|s| s.name.clone()));
        sites
    }

    /// Splits a selection into the local part and the remote sites. A forwarded request
    /// (`forwarded`) must select this site alone: a site never fans a request out again.
    pub fn plan(&self, selector: &SiteSelector, forwarded: bool) -> Result<Plan, SelectorError> {
        let sites = self.resolve(selector);
        if forwarded && sites != [self.current.clone()] {
            return Err(SelectorError::Forwarded {
                current: self.current.clone(),
            });
        }
        let local = sites.contains(&self.current);
        let remote = sites.into_iter().filter(|s| *s != self.current).collect();
        Ok(Plan { local, remote })
    }

    fn known_list(&self) -> String {
        self.known.iter().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Parses the query string form.
    pub fn parse_query(&self, raw: Option<&str>) -> Result<SiteSelector, SelectorError> {
        let Some(raw) = raw.map(str::trim) else {
            return Ok(SiteSelector::Current);
        };
        match raw {
            "current" => Ok(SiteSelector::Current),
            "all" => Ok(SiteSelector::All),
            _ => match serde_json::from_str::<Value>(raw) {
                Ok(value) => self.parse_value(Some(&value)),
                Err(_) => Err(self.malformed()),
            },
        }
    }

    /// Parses the body form (absent: the current site; `null` is no selection and refused).
    pub fn parse_value(&self, value: Option<&Value>) -> Result<SiteSelector, SelectorError> {
        match value {
            None => Ok(SiteSelector::Current),
            Some(Value::String(word)) if word == "current" => Ok(SiteSelector::Current),
            Some(Value::String(word)) if word == "all" => Ok(SiteSelector::All),
            Some(Value::Array(items)) => {
                let names = items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| self.malformed())
                    })
                    .collect::<Result<BTreeSet<String>, _>>()?;
                if names.is_empty() {
                    return Err(SelectorError::Empty {
                        known: self.known_list(),
                    });
                }
                match names.iter().find(|name| !self.known.contains(*name)) {
                    Some(name) => Err(SelectorError::Unknown {
                        name: name.clone(),
                        known: self.known_list(),
                    }),
                    None => Ok(SiteSelector::Named(names)),
                }
            }
            Some(_) => Err(self.malformed()),
        }
    }

    /// The sites a selector names, in name order.
    pub fn resolve(&self, selector: &SiteSelector) -> Vec<String> {
        match selector {
            SiteSelector::Current => vec![self.current.clone()],
            SiteSelector::All => self.known.iter().cloned().collect(),
            SiteSelector::Named(names) => names.iter().cloned().collect(),
        }
    }

    fn malformed(&self) -> SelectorError {
        SelectorError::Malformed {
            example: self.current.clone(),
            known: self.known_list(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites() -> Sites {
        Sites {
            current: "central".into(),
            known: BTreeSet::from(["central".into(), "east".into()]),
        }
    }

    #[test]
    fn query_forms() {
        let s = sites();
        assert_eq!(s.parse_query(None), Ok(SiteSelector::Current));
        assert_eq!(s.parse_query(Some("current")), Ok(SiteSelector::Current));
        assert_eq!(s.parse_query(Some("\"all\"")), Ok(SiteSelector::All));
        assert_eq!(s.parse_query(Some("all")), Ok(SiteSelector::All));
        let named = s.parse_query(Some(r#"["east","east"]"#)).unwrap();
        assert_eq!(s.resolve(&named), vec!["east".to_string()]);
        assert_eq!(s.resolve(&SiteSelector::All).len(), 2);
        assert_eq!(
            s.resolve(&SiteSelector::Current),
            vec!["central".to_string()]
        );
    }

    #[test]
    fn a_forwarded_request_runs_here_only() {
        let s = sites();
        let here = Plan {
            local: true,
            remote: vec![],
        };
        let named =
            |names: &[&str]| SiteSelector::Named(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(s.plan(&SiteSelector::Current, true), Ok(here.clone()));
        assert_eq!(s.plan(&named(&["central"]), true), Ok(here));
        for selector in [
            SiteSelector::All,
            named(&["east"]),
            named(&["central", "east"]),
        ] {
            assert!(matches!(
                s.plan(&selector, true),
                Err(SelectorError::Forwarded { .. })
            ));
        }
        let everywhere = s.plan(&SiteSelector::All, false).unwrap();
        assert_eq!(
            everywhere,
            Plan {
                local: true,
                remote: vec!["east".into()]
            }
        );
        assert_eq!(everywhere.sites("central"), vec!["central", "east"]);
        let elsewhere = s.plan(&named(&["east"]), false).unwrap();
        assert!(!elsewhere.local);
        assert_eq!(elsewhere.sites("central"), vec!["east"]);
    }

    #[test]
    fn refusals_name_the_known_sites() {
        let s = sites();
        for bad in [
            "east",
            "[east]",
            "{}",
            "[1]",
            "\"everywhere\"",
            "[\"west\"]",
            "[]",
            "null",
        ] {
            let error = s.parse_query(Some(bad)).unwrap_err();
            assert!(
                error.to_string().contains("central, east"),
                "{bad}: {error}"
            );
        }
        assert!(matches!(
            s.parse_query(Some(r#"["central","west"]"#)),
            Err(SelectorError::Unknown { name, .. }) if name == "west"
        ));
        assert_eq!(
            s.parse_value(Some(&serde_json::json!("all"))),
            Ok(SiteSelector::All)
        );
        assert!(s.parse_value(Some(&serde_json::json!(7))).is_err());
        assert!(s.parse_value(Some(&Value::Null)).is_err());
        assert_eq!(s.parse_value(None), Ok(SiteSelector::Current));
    }

    mod properties {
        use proptest::collection::{btree_set, vec};
        use proptest::prelude::*;

        use super::*;

        const KNOWN: [&str; 4] = ["central", "east", "west", "north-2"];

        fn four() -> Sites {
            Sites {
                current: "central".into(),
                known: KNOWN.iter().map(|s| s.to_string()).collect(),
            }
        }

        fn known_names() -> impl Strategy<Value = BTreeSet<String>> {
            btree_set(proptest::sample::select(KNOWN.to_vec()), 1..=4)
                .prop_map(|names| names.into_iter().map(str::to_owned).collect())
        }

        /// A list as a client might write it: any order, names repeated, any spacing.
        fn written(names: &BTreeSet<String>, order: &[usize], gaps: &[String]) -> String {
            let names: Vec<&String> = names.iter().collect();
            let items: Vec<String> = order
                .iter()
                .map(|i| serde_json::to_string(names[i % names.len()]).unwrap())
                .chain(names.iter().map(|n| serde_json::to_string(n).unwrap()))
                .collect();
            let mut text = format!("{}[", gaps[0]);
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                text.push_str(&gaps[(i + 1) % gaps.len()]);
                text.push_str(item);
            }
            text.push_str(&format!("{}]{}", gaps[1], gaps[2]));
            text
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// Any query string is a selector or a refusal that names the known sites, and a
            /// refusal says no more than what it was given and the known sites.
            #[test]
            fn any_query_is_a_selector_or_a_named_refusal(raw in any::<String>()) {
                let sites = four();
                match sites.parse_query(Some(&raw)) {
                    Ok(selector) => {
                        prop_assert!(sites.resolve(&selector).iter().all(|s| sites.known.contains(s)));
                    }
                    Err(error) => {
                        let said = error.to_string();
                        prop_assert!(said.contains("central, east, north-2, west"), "{}", said);
                        prop_assert!(said.len() <= 4 * raw.len() + 256, "{}", said);
                    }
                }
            }

            /// A list of known sites reads back as the set it names, however it is written.
            #[test]
            fn lists_read_back_as_the_sites_they_name(
                names in known_names(),
                order in vec(0usize..4, 0..6),
                gaps in vec(proptest::sample::select(vec!["", " ", "\t", "\n ", "  "]), 3..6),
            ) {
                let sites = four();
                let gaps: Vec<String> = gaps.into_iter().map(str::to_owned).collect();
                let raw = written(&names, &order, &gaps);
                prop_assert_eq!(sites.parse_query(Some(&raw)), Ok(SiteSelector::Named(names.clone())));
                let value: serde_json::Value = serde_json::from_str(&raw).unwrap();
                prop_assert_eq!(sites.parse_value(Some(&value)), Ok(SiteSelector::Named(names)));
            }

            /// The words, bare or as JSON strings, with spaces around.
            #[test]
            fn the_words_read_the_same_however_written(
                all in any::<bool>(),
                quoted in any::<bool>(),
                before in "[ \t]{0,3}",
                after in "[ \t]{0,3}",
            ) {
                let (word, expected) = match all {
                    true => ("all", SiteSelector::All),
                    false => ("current", SiteSelector::Current),
                };
                let raw = match quoted {
                    true => format!("{before}\"{word}\"{after}"),
                    false => format!("{before}{word}{after}"),
                };
                prop_assert_eq!(four().parse_query(Some(&raw)), Ok(expected));
            }

            /// A name no site has is refused and named, among known ones or alone.
            #[test]
            fn unknown_names_are_refused_by_name(
                names in known_names(),
                stranger in "[a-z0-9_-]{1,12}".prop_filter("not a site", |s| !KNOWN.contains(&s.as_str())),
            ) {
                let mut list: Vec<&str> = names.iter().map(String::as_str).collect();
                list.push(&stranger);
                let raw = serde_json::to_string(&list).unwrap();
                let refused = four().parse_query(Some(&raw));
                prop_assert!(
                    matches!(&refused, Err(SelectorError::Unknown { name, .. }) if *name == stranger),
                    "{:?}", refused
                );
            }

            /// A list holding anything but strings, or any other JSON, is malformed.
            #[test]
            fn other_json_is_malformed(
                value in prop_oneof![
                    any::<i64>().prop_map(serde_json::Value::from),
                    any::<bool>().prop_map(serde_json::Value::from),
                    "[a-z]{0,8}".prop_filter("not a word", |s| s != "all" && s != "current")
                        .prop_map(serde_json::Value::from),
                    Just(serde_json::json!({"sites": "all"})),
                    Just(serde_json::json!([["east"]])),
                    Just(serde_json::json!(["east", 1])),
                    Just(serde_json::json!([null])),
                ],
            ) {
                let refused = four().parse_value(Some(&value));
                prop_assert!(matches!(refused, Err(SelectorError::Malformed { .. })), "{:?}", refused);
            }
        }
    }
}

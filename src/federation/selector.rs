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
}

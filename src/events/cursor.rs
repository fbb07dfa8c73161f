//! Where a reader of the event stream stands: the last event it has seen at each site. The
//! stream gives it as each event's SSE `id:`, and takes it back as `Last-Event-ID`.

use std::collections::BTreeMap;
use std::fmt;

/// The last sequence seen per site, and the time from which a site not yet seen is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamCursor {
    pub seen: BTreeMap<String, u64>,
    /// A site the cursor has no sequence for is read from this time on (none: from its next
    /// event).
    pub from_ms: Option<u64>,
}

/// Where the reader of one site starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// After this sequence.
    After(u64),
    /// At the first event at or after this time.
    At(u64),
    /// At the site's next event.
    Next,
}

impl StreamCursor {
    pub fn start_of(&self, site: &str) -> Start {
        match (self.seen.get(site), self.from_ms) {
            (Some(seq), _) => Start::After(*seq),
            (None, Some(ms)) => Start::At(ms),
            (None, None) => Start::Next,
        }
    }

    pub fn saw(&mut self, site: &str, seq: u64) {
        match self.seen.get_mut(site) {
            Some(last) => *last = seq,
            None => {
                self.seen.insert(site.to_string(), seq);
            }
        }
    }
}

/// `central:18,east:7;from=1796205600000` (the `from` part only when there is one).
impl fmt::Display for StreamCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (site, seq) in &self.seen {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{site}:{seq}")?;
        }
        if let Some(ms) = self.from_ms {
            write!(f, ";from={ms}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for StreamCursor {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let bad = || format!("Last-Event-ID {raw:?} is not an id this stream gave");
        let (positions, from) = match raw.split_once(';') {
            Some((positions, from)) => (positions, Some(from)),
            None => (raw, None),
        };
        let from_ms = match from {
            Some(from) => Some(
                from.strip_prefix("from=")
                    .and_then(|ms| ms.parse().ok())
                    .ok_or_else(bad)?,
            ),
            None => None,
        };
        let mut seen = BTreeMap::new();
        for position in positions.split(',').filter(|p| !p.is_empty()) {
            let (site, seq) = position.rsplit_once(':').ok_or_else(bad)?;
            let seq: u64 = seq.parse().map_err(|_| bad())?;
            if site.is_empty() || seen.insert(site.to_string(), seq).is_some() {
                return Err(bad());
            }
        }
        Ok(Self { seen, from_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_prints_and_parses_back() {
        let mut cursor = StreamCursor {
            from_ms: Some(1_796_205_600_000),
            ..StreamCursor::default()
        };
        cursor.saw("east", 7);
        cursor.saw("central", 18);
        cursor.saw("central", 19);
        let text = cursor.to_string();
        assert_eq!(text, "central:19,east:7;from=1796205600000");
        assert_eq!(text.parse::<StreamCursor>(), Ok(cursor.clone()));
        assert_eq!(cursor.start_of("central"), Start::After(19));
        assert_eq!(cursor.start_of("west"), Start::At(1_796_205_600_000));
        let bare: StreamCursor = "central:3".parse().expect("parses");
        assert_eq!(bare.start_of("east"), Start::Next);
    }

    #[test]
    fn a_cursor_it_did_not_give_is_refused() {
        for raw in [
            "central",
            "central:x",
            ":3",
            "central:1,central:2",
            "central:1;since=3",
            "central:1;from=x",
        ] {
            assert!(raw.parse::<StreamCursor>().is_err(), "{raw}");
        }
        assert_eq!("".parse::<StreamCursor>(), Ok(StreamCursor::default()));
    }
}

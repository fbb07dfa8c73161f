//! One JSON array made of several: this site's items, ready, and the other sites' arrays as
//! their bytes arrive, each one's brackets dropped and commas put between the parts that hold
//! items. A site whose answer breaks off ends the whole body with an error, so that the client
//! sees a broken answer rather than a shorter list.

use std::collections::VecDeque;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};

use super::SiteStream;

pub enum Part {
    /// Items already rendered, comma-separated, without brackets.
    Ready(Bytes),
    /// A site's JSON array, still arriving.
    Arriving { site: String, answer: SiteStream },
}

/// The parts, in order, as one JSON array.
pub fn splice(parts: Vec<Part>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    let splicer = Splicer {
        parts: parts.into(),
        opened: false,
        closed: false,
        wrote_any: false,
        part: PartState::default(),
    };
    futures_util::stream::unfold(splicer, |mut splicer| async move {
        let chunk = splicer.next().await?;
        Some((chunk, splicer))
    })
}

struct Splicer {
    parts: VecDeque<Part>,
    opened: bool,
    closed: bool,
    wrote_any: bool,
    part: PartState,
}

/// Where the arriving part stands: whether its `[` was seen, whether it wrote an item, and the
/// last chunk, held back until it is known not to end the array.
#[derive(Default)]
struct PartState {
    opened: bool,
    wrote: bool,
    held: Option<Bytes>,
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

impl Splicer {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if !self.opened {
            self.opened = true;
            return Some(Ok(Bytes::from_static(b"[")));
        }
        loop {
            let Some(part) = self.parts.front_mut() else {
                if self.closed {
                    return None;
                }
                self.closed = true;
                return Some(Ok(Bytes::from_static(b"]")));
            };
            let step = match part {
                Part::Ready(bytes) => {
                    let bytes = std::mem::take(bytes);
                    self.parts.pop_front();
                    self.part = PartState::default();
                    Ok(Some(bytes))
                }
                Part::Arriving { site, answer } => {
                    let site = site.clone();
                    match answer.body.next().await {
                        Some(Ok(chunk)) => self.arrived(&site, chunk),
                        Some(Err(e)) => Err(format!("site {site}'s listing broke off: {e}")),
                        None => {
                            let end = self.ended(&site);
                            self.parts.pop_front();
                            self.part = PartState::default();
                            end
                        }
                    }
                }
            };
            match step {
                Ok(Some(items)) if !is_blank(&items) => return Some(Ok(self.lead(items))),
                Ok(_) => continue,
                Err(reason) => {
                    self.parts.clear();
                    self.closed = true;
                    return Some(Err(std::io::Error::other(reason)));
                }
            }
        }
    }

    /// A chunk of the current part: what may be sent of it now.
    fn arrived(&mut self, site: &str, mut chunk: Bytes) -> Result<Option<Bytes>, String> {
        if !self.part.opened {
            let Some(start) = chunk.iter().position(|b| !b.is_ascii_whitespace()) else {
                return Ok(None);
            };
            if chunk[start] != b'[' {
                return Err(format!(
                    "site {site} sent a listing that is not a JSON array"
                ));
            }
            self.part.opened = true;
            chunk = chunk.slice(start + 1..);
        }
        if is_blank(&chunk) {
            if let Some(held) = self.part.held.take() {
                self.part.held = Some(Bytes::from([&held[..], &chunk[..]].concat()));
            }
            return Ok(None);
        }
        Ok(self.part.held.replace(chunk))
    }

    /// The current part's end: its held chunk without the closing `]`.
    fn ended(&mut self, site: &str) -> Result<Option<Bytes>, String> {
        let broken = || format!("site {site} sent a listing that is not a JSON array");
        let Some(held) = self.part.held.take() else {
            return match self.part.opened {
                true => Err(broken()),
                false => Err(format!("site {site} sent an empty answer")),
            };
        };
        let end = held
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .filter(|end| held[*end] == b']')
            .ok_or_else(broken)?;
        Ok(Some(held.slice(..end)))
    }

    /// Items of the current part, after a comma when items came before them.
    fn lead(&mut self, items: Bytes) -> Bytes {
        let first_of_part = !self.part.wrote;
        self.part.wrote = true;
        let needs_comma = first_of_part && self.wrote_any;
        self.wrote_any = true;
        match needs_comma {
            true => Bytes::from([b",", &items[..]].concat()),
            false => items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arriving(site: &str, chunks: &[&'static str]) -> Part {
        let chunks: Vec<Result<Bytes, String>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        Part::Arriving {
            site: site.into(),
            answer: SiteStream {
                status: 200,
                body: Box::pin(futures_util::stream::iter(chunks)),
            },
        }
    }

    async fn spliced(parts: Vec<Part>) -> Result<String, String> {
        let chunks: Vec<_> = splice(parts).collect().await;
        let mut text = Vec::new();
        for chunk in chunks {
            text.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        }
        Ok(String::from_utf8(text).expect("utf-8"))
    }

    #[tokio::test]
    async fn parts_join_into_one_array() {
        let joined = spliced(vec![
            arriving("a", &["[{\"x\":1}", ",{\"x\":2}", "]"]),
            Part::Ready(Bytes::from_static(b"{\"y\":1},{\"y\":2}")),
            arriving("b", &["  [", "]  "]),
            Part::Ready(Bytes::new()),
            arriving("c", &["[{\"z\":[1,2]}]", " \n"]),
        ])
        .await
        .unwrap();
        let value: serde_json::Value = serde_json::from_str(&joined).expect(&joined);
        assert_eq!(
            value,
            serde_json::json!([{"x":1},{"x":2},{"y":1},{"y":2},{"z":[1,2]}])
        );
        assert_eq!(spliced(vec![]).await.unwrap(), "[]");
        let empties = spliced(vec![arriving("a", &["[]"]), Part::Ready(Bytes::new())]);
        assert_eq!(empties.await.unwrap(), "[]");
    }

    #[tokio::test]
    async fn a_broken_part_breaks_the_whole_answer() {
        for broken in [vec!["{\"x\":1}"], vec!["[{\"x\":1}"], vec![], vec!["   "]] {
            let result = spliced(vec![
                Part::Ready(Bytes::from_static(b"1")),
                arriving("east", &broken),
            ])
            .await;
            assert!(result.is_err_and(|e| e.contains("east")), "{broken:?}");
        }
        let failing = Part::Arriving {
            site: "east".into(),
            answer: SiteStream {
                status: 200,
                body: Box::pin(futures_util::stream::iter(vec![
                    Ok(Bytes::from_static(b"[1,")),
                    Err("connection reset".to_string()),
                ])),
            },
        };
        let result = spliced(vec![failing]).await;
        assert!(result.is_err_and(|e| e.contains("broke off")));
    }
}

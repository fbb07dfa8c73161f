//! The event stream of the selected sites, as one ordered sequence per site: this site's feed
//! read where this node has applied it, each other site's read through a stream of its own
//! (one site each, `sites=["east"]`), resumed at another of its nodes when the one serving it
//! goes. Every event reaches the reader once, in its site's order: a follower resumes after
//! the last event it handed on.
//!
//! The reader is never buffered without bound: the followers hand events through one bounded
//! channel, and a reader that takes none for [`SLOW_READER`] is dropped (it resumes with the
//! last id it has). Owns the followers; the feed is the site state's, the HTTP shape the api's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Notify};

use super::cursor::{Start, StreamCursor};
use super::json::entry_text;
use crate::federation::{Federation, Received, SiteRequest, Verb};
use crate::state::site::audit::AuditFilter;
use crate::state::site::SiteStore;

/// A reader that takes nothing for this long is dropped.
pub const SLOW_READER: Duration = Duration::from_secs(5);
/// The events handed on at once, for all sites.
const BACKLOG: usize = 1024;
/// A follower of this site's feed reads it at most this often: at thousands of entries a
/// second, waking every reader for each one costs more than the events themselves.
const COALESCE: Duration = Duration::from_millis(2);
/// How long a follower of another site waits before it tries the site again.
const RETRY: Duration = Duration::from_millis(500);
pub const PATH: &str = "/rest/v1/events";

/// What the stream carries.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// An event of `site`, the `seq`-th of its feed, as JSON text.
    Event {
        site: String,
        seq: u64,
        data: Arc<str>,
    },
    /// Something the reader should know that is not an event: a site that does not answer, a
    /// gap where the feed was trimmed before the reader got there.
    Notice(Value),
}

/// Makes the federation token of each call to another site (the caller's, fresh each time).
pub type TokenSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// What a stream is opened with.
pub struct Opening {
    pub current: String,
    pub local: bool,
    pub remote: Vec<String>,
    pub cursor: StreamCursor,
    pub filter: AuditFilter,
    /// The filters as query parameters, for the other sites' streams.
    pub query: Vec<(String, String)>,
}

/// The JSON of this site's recent events, made once for every reader: readers of a busy
/// site are at nearly the same place, and the first to get there writes it for the others.
#[derive(Default)]
pub struct Rendered {
    recent: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<str>>>,
}

impl Rendered {
    /// How many events it keeps (the newest).
    const KEPT: usize = 8192;

    pub fn get(&self, site: &str, entry: &crate::state::site::feed::Entry) -> Arc<str> {
        if let Some(text) = self.lock().get(&entry.seq) {
            return text.clone();
        }
        let text: Arc<str> = entry_text(site, entry).into();
        let mut recent = self.lock();
        recent.insert(entry.seq, text.clone());
        while recent.len() > Self::KEPT {
            recent.pop_first();
        }
        text
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<str>>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The wiring a stream reads through.
#[derive(Clone)]
pub struct Sources {
    pub site: SiteStore,
    pub rendered: Arc<Rendered>,
    pub advanced: watch::Receiver<u64>,
    pub federation: Arc<Federation>,
    pub token: TokenSource,
}

/// A stream being read: its items, and the signal that it was dropped for being slow.
pub struct Open {
    pub items: mpsc::Receiver<Item>,
    pub too_slow: Arc<Notify>,
    followers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Open {
    fn drop(&mut self) {
        for follower in &self.followers {
            follower.abort();
        }
    }
}

/// Starts a follower per selected site.
pub fn open(sources: Sources, opening: Opening) -> Open {
    let (out, items) = mpsc::channel(BACKLOG);
    let too_slow = Arc::new(Notify::new());
    let hand = Hand {
        out,
        too_slow: too_slow.clone(),
        patience: SLOW_READER,
    };
    let mut followers = Vec::new();
    if opening.local {
        let local = Local {
            name: opening.current.clone(),
            site: sources.site.clone(),
            rendered: sources.rendered.clone(),
            advanced: sources.advanced.clone(),
            filter: opening.filter.clone(),
        };
        let start = opening.cursor.start_of(&opening.current);
        followers.push(tokio::spawn(local.follow(start, hand.clone())));
    }
    for site in opening.remote {
        let start = opening.cursor.start_of(&site);
        let remote = Remote {
            federation: sources.federation.clone(),
            token: sources.token.clone(),
            query: opening.query.clone(),
            from_ms: opening.cursor.from_ms,
            site,
        };
        followers.push(tokio::spawn(remote.follow(start, hand.clone())));
    }
    Open {
        items,
        too_slow,
        followers,
    }
}

/// Where followers hand their items.
#[derive(Clone)]
struct Hand {
    out: mpsc::Sender<Item>,
    too_slow: Arc<Notify>,
    /// How long an item may wait for room before the reader is dropped.
    patience: Duration,
}

impl Hand {
    /// Hands an item on; false when the reader is gone or was dropped.
    async fn give(&self, item: Item) -> bool {
        match self.out.send_timeout(item, self.patience).await {
            Ok(()) => true,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                self.too_slow.notify_one();
                false
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => false,
        }
    }
}

/// This site's feed, as this node has applied it.
struct Local {
    name: String,
    site: SiteStore,
    rendered: Arc<Rendered>,
    advanced: watch::Receiver<u64>,
    filter: AuditFilter,
}

impl Local {
    async fn follow(mut self, start: Start, hand: Hand) {
        self.advanced.borrow_and_update();
        let view = self.site.feed_local();
        let mut after = match start {
            Start::After(seq) => seq,
            Start::At(ms) => view.before_time(ms),
            Start::Next => view.last_seq(),
        };
        loop {
            let read_at = tokio::time::Instant::now();
            self.advanced.borrow_and_update();
            let view = self.site.feed_local();
            if let Some(first) = view.first_seq().filter(|first| *first > after + 1) {
                let gap = json!({"notice": "gap", "site": self.name, "from_seq": after + 1,
                    "to_seq": first - 1, "message": "these events were trimmed from the feed before this reader got to them"});
                if !hand.give(Item::Notice(gap)).await {
                    return;
                }
            }
            for entry in view.after(after) {
                after = entry.seq;
                if !self.filter.matches_entry(&entry) {
                    continue;
                }
                let item = Item::Event {
                    site: self.name.clone(),
                    seq: entry.seq,
                    data: self.rendered.get(&self.name, &entry),
                };
                if !hand.give(item).await {
                    return;
                }
            }
            tokio::select! {
                changed = self.advanced.changed() => if changed.is_err() { return },
                _ = hand.out.closed() => return,
            }
            tokio::time::sleep_until(read_at + COALESCE).await;
        }
    }
}

/// Another site's feed, through a stream of its own at one of its nodes.
struct Remote {
    federation: Arc<Federation>,
    token: TokenSource,
    query: Vec<(String, String)>,
    from_ms: Option<u64>,
    site: String,
}

impl Remote {
    async fn follow(self, start: Start, hand: Hand) {
        let mut start = match start {
            // Until this site is first reached, its events are wanted from the stream's start.
            Start::Next => Start::At(self.from_ms.unwrap_or_else(sessionplane_cluster::now_ms)),
            start => start,
        };
        let mut told_down = false;
        loop {
            let why = match self.read_once(&mut start, &hand).await {
                Ok(()) => return,
                Err(Stop::Reader) => return,
                Err(Stop::Refused(answer)) => {
                    let notice = json!({"notice": "refused", "site": self.site, "message": answer});
                    hand.give(Item::Notice(notice)).await;
                    return;
                }
                Err(Stop::Lost(why)) => why,
            };
            if !told_down {
                let notice = json!({"notice": "unreachable", "site": self.site, "message": why});
                if !hand.give(Item::Notice(notice)).await {
                    return;
                }
                told_down = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = hand.out.closed() => return,
            }
        }
    }

    /// Reads the site's stream until it breaks, moving `start` on past each event handed on.
    async fn read_once(&self, start: &mut Start, hand: &Hand) -> Result<(), Stop> {
        let token = (self.token)().ok_or(Stop::Reader)?;
        let mut request = SiteRequest::new(Verb::Get, PATH);
        request.query = self.query.clone();
        let mut resume = StreamCursor::default();
        match *start {
            Start::After(seq) => resume.saw(&self.site, seq),
            Start::At(ms) => resume.from_ms = Some(ms),
            Start::Next => {}
        }
        request = request.query("last_event_id", resume.to_string());
        let request = request.for_site(&self.site);
        let received = self
            .federation
            .call_streaming(&self.site, &request, &token)
            .await
            .map_err(|failure| Stop::Lost(failure.to_string()))?;
        let mut body = match received {
            Received::Whole(answer) if answer.status >= 500 => {
                return Err(Stop::Lost(answer.message()))
            }
            Received::Whole(answer) => return Err(Stop::Refused(answer.message())),
            Received::Streaming(stream) => stream.body,
        };
        let mut lines = SseLines::default();
        use futures_util::StreamExt;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(Stop::Lost)?;
            for item in lines.push(&chunk) {
                if let Item::Event { seq, .. } = &item {
                    *start = Start::After(*seq);
                }
                if !hand.give(item).await {
                    return Err(Stop::Reader);
                }
            }
        }
        Err(Stop::Lost("the stream ended".into()))
    }
}

enum Stop {
    /// The reader is gone, or was dropped.
    Reader,
    /// The site answered with a refusal: trying again will not change it.
    Refused(String),
    /// The stream broke or could not be opened; why.
    Lost(String),
}

/// The events of a stream this node's api sent, parsed back as they arrive.
#[derive(Default)]
pub struct SseLines {
    partial: Vec<u8>,
    event: Option<String>,
    data: String,
    last_id: Option<String>,
}

impl SseLines {
    /// The `id:` of the last event parsed: where a reader resumes.
    pub fn last_id(&self) -> Option<&str> {
        self.last_id.as_deref()
    }

    pub fn push(&mut self, chunk: &[u8]) -> Vec<Item> {
        self.partial.extend_from_slice(chunk);
        let mut items = Vec::new();
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                items.extend(self.dispatch());
            } else if let Some(data) = line.strip_prefix("data:") {
                self.data.push_str(data.strip_prefix(' ').unwrap_or(data));
            } else if let Some(event) = line.strip_prefix("event:") {
                self.event = Some(event.trim().to_string());
            } else if let Some(id) = line.strip_prefix("id:") {
                self.last_id = Some(id.trim().to_string());
            }
        }
        items
    }

    fn dispatch(&mut self) -> Option<Item> {
        let data = std::mem::take(&mut self.data);
        let event = self.event.take();
        let json: Value = serde_json::from_str(&data).ok()?;
        match event.as_deref() {
            Some("notice") => Some(Item::Notice(json)),
            _ => {
                let site = json.get("site")?.as_str()?.to_string();
                let seq = json.get("seq")?.as_u64()?;
                Some(Item::Event {
                    site,
                    seq,
                    data: data.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: u64) -> Item {
        Item::Event {
            site: "central".into(),
            seq,
            data: "{}".into(),
        }
    }

    #[tokio::test]
    async fn a_reader_that_takes_nothing_is_dropped_not_buffered() {
        let (out, mut items) = mpsc::channel(2);
        let hand = Hand {
            out,
            too_slow: Arc::new(Notify::new()),
            patience: Duration::from_millis(50),
        };
        assert!(hand.give(event(1)).await);
        assert!(hand.give(event(2)).await);
        // Full, and nobody reads: the next waits its patience, then the reader is dropped.
        let started = tokio::time::Instant::now();
        assert!(!hand.give(event(3)).await);
        assert!(started.elapsed() >= Duration::from_millis(50));
        tokio::time::timeout(Duration::from_secs(1), hand.too_slow.notified())
            .await
            .expect("the stream is told to end");
        // Nothing beyond the channel's room was kept for it.
        assert_eq!(items.recv().await, Some(event(1)));
        assert_eq!(items.recv().await, Some(event(2)));
        assert!(items.try_recv().is_err());
        drop(items);
        assert!(!hand.give(event(4)).await, "a reader gone takes nothing");
    }

    #[test]
    fn events_parse_back_from_chunks_cut_anywhere() {
        let text = ": keep-alive\n\nid: east:4\ndata: {\"site\":\"east\",\"seq\":4,\"action\":\"session.created\"}\n\n\
            event: notice\ndata: {\"notice\":\"gap\"}\n\nid: east:5\r\ndata: {\"site\":\"east\",\"seq\":5}\r\n\r\n";
        for cut in 0..text.len() {
            let mut lines = SseLines::default();
            let mut items = lines.push(&text.as_bytes()[..cut]);
            items.extend(lines.push(&text.as_bytes()[cut..]));
            let summary: Vec<String> = items
                .iter()
                .map(|item| match item {
                    Item::Event { site, seq, .. } => format!("{site}:{seq}"),
                    Item::Notice(n) => format!("notice {}", n["notice"]),
                })
                .collect();
            assert_eq!(
                summary,
                ["east:4", "notice \"gap\"", "east:5"],
                "cut at {cut}"
            );
            assert_eq!(lines.last_id(), Some("east:5"));
        }
    }
}

//! The `ws` logical role's listing: every live session once as `http`, and once more as
//! `websocket` with its connections when it has any. Items come in (session id, http before
//! websocket) order, from a frozen [`SiteView`], so a listing pages with a stable cursor and
//! streams at any size without holding a lock.

use std::fmt;
use std::ops::Bound;
use std::str::FromStr;

use serde::Serialize;
use uuid::Uuid;

use crate::model::{Connection, Session};
use crate::state::site::SiteView;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItemKind {
    Http,
    Websocket,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Websocket => "websocket",
        }
    }
}

impl FromStr for ItemKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "http" => Ok(Self::Http),
            "websocket" => Ok(Self::Websocket),
            other => Err(format!(
                "session_type {other:?}: expected \"http\" or \"websocket\""
            )),
        }
    }
}

/// Where a page ends: the last item given. Shown to clients as an opaque page token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    session_id: Uuid,
    kind: ItemKind,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.kind {
            ItemKind::Http => 'h',
            ItemKind::Websocket => 'w',
        };
        write!(f, "{}{tag}", self.session_id.simple())
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let malformed = || format!("page_token {raw:?} is not one this API gave");
        let (id, tag) = raw.split_at_checked(32).ok_or_else(malformed)?;
        let kind = match tag {
            "h" => ItemKind::Http,
            "w" => ItemKind::Websocket,
            _ => return Err(malformed()),
        };
        let session_id = Uuid::try_parse(id).map_err(|_| malformed())?;
        Ok(Self { session_id, kind })
    }
}

/// A user named by id or by login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserMatch {
    Id(Uuid),
    Login(String),
}

impl UserMatch {
    pub fn parse(raw: &str) -> Self {
        match Uuid::try_parse(raw) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Login(raw.to_string()),
        }
    }

    fn matches(&self, session: &Session) -> bool {
        match self {
            Self::Id(id) => session.user_id == *id,
            Self::Login(login) => *session.login == **login,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub domain: Option<String>,
    pub user: Option<UserMatch>,
    pub kind: Option<ItemKind>,
}

impl Filter {
    fn matches(&self, session: &Session) -> bool {
        self.domain.as_deref().is_none_or(|d| *session.domain == *d)
            && self.user.as_ref().is_none_or(|u| u.matches(session))
    }

    fn wants(&self, kind: ItemKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionItem<'a> {
    pub conn_id: Uuid,
    pub is_pid_alive: bool,
    pub node: &'a str,
    pub pid: String,
}

/// A session as the `ws` logical role lists it: once as `http`, and once more as `websocket`
/// with its connections when it has open websockets.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionItem<'a> {
    pub domain: &'a str,
    pub login: &'a str,
    pub session_id: Uuid,
    pub session_type: &'static str,
    pub site: &'a str,
    pub ttl: u64,
    pub user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<ConnectionItem<'a>>>,
}

/// One listing request over a frozen view.
pub struct Listing<'a, Alive> {
    pub view: &'a SiteView,
    pub filter: &'a Filter,
    pub site: &'a str,
    pub now_ms: u64,
    /// Whether a connection's holder still has it (`is_pid_alive`).
    pub alive: Alive,
}

impl<'a, Alive: Fn(&Connection) -> bool> Listing<'a, Alive> {
    /// At most `limit` items after `after`, and the cursor of the last one when more may follow.
    pub fn page(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<SessionItem<'a>>, Option<Cursor>) {
        let from = after.map_or(Bound::Unbounded, |c| Bound::Included(c.session_id));
        let mut items = Vec::new();
        let mut last = None;
        // A user given by id pages through the by-user index; anything else walks every session.
        let sessions: Box<dyn Iterator<Item = &'a Session>> = match &self.filter.user {
            Some(UserMatch::Id(user_id)) => Box::new(self.view.user_sessions_from(*user_id, from)),
            _ => Box::new(self.view.sessions_from(from)),
        };
        for session in sessions {
            if !session.is_live(self.now_ms) || !self.filter.matches(session) {
                continue;
            }
            for kind in [ItemKind::Http, ItemKind::Websocket] {
                let position = Cursor {
                    session_id: session.session_id,
                    kind,
                };
                let already_given = after.is_some_and(|a| {
                    (a.session_id, a.kind) >= (position.session_id, position.kind)
                });
                if already_given || !self.filter.wants(kind) {
                    continue;
                }
                let Some(item) = self.item(session, kind) else {
                    continue;
                };
                if items.len() == limit {
                    return (items, last);
                }
                items.push(item);
                last = Some(position);
            }
        }
        (items, None)
    }

    fn item(&self, session: &'a Session, kind: ItemKind) -> Option<SessionItem<'a>> {
        let connections = match kind {
            ItemKind::Http => None,
            ItemKind::Websocket => {
                let connections: Vec<ConnectionItem<'a>> = self
                    .view
                    .connections_of(session.session_id)
                    .map(|c| ConnectionItem {
                        conn_id: c.conn_id,
                        is_pid_alive: (self.alive)(c),
                        node: &c.node,
                        pid: c.pid.to_string(),
                    })
                    .collect();
                if connections.is_empty() {
                    return None;
                }
                Some(connections)
            }
        };
        Some(SessionItem {
            domain: &session.domain,
            login: &session.login,
            session_id: session.session_id,
            session_type: kind.as_str(),
            site: self.site,
            ttl: session.ttl_secs(self.now_ms),
            user_id: session.user_id,
            connections,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cursor() -> impl Strategy<Value = Cursor> {
        (any::<u128>(), any::<bool>()).prop_map(|(id, websocket)| Cursor {
            session_id: Uuid::from_u128(id),
            kind: match websocket {
                true => ItemKind::Websocket,
                false => ItemKind::Http,
            },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn cursors_round_trip(cursor in cursor()) {
            prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }

        /// Any token is a cursor or refused; a cursor is read only from what this API writes
        /// (up to the case of its hex digits).
        #[test]
        fn any_token_is_a_cursor_or_refused(raw in any::<String>()) {
            if let Ok(cursor) = raw.parse::<Cursor>() {
                prop_assert!(cursor.to_string().eq_ignore_ascii_case(&raw));
            }
        }

        /// A written cursor with one character changed, cut or lengthened is refused or reads
        /// as another cursor, never a panic.
        #[test]
        fn damaged_cursors_are_refused_or_read_whole(
            cursor in cursor(),
            at in any::<prop::sample::Index>(),
            c in any::<char>(),
            how in 0u8..3,
        ) {
            let mut chars: Vec<char> = cursor.to_string().chars().collect();
            let i = at.index(chars.len());
            match how {
                0 => chars[i] = c,
                1 => chars.truncate(i),
                _ => chars.insert(i, c),
            }
            let damaged: String = chars.into_iter().collect();
            if let Ok(read) = damaged.parse::<Cursor>() {
                prop_assert!(read.to_string().eq_ignore_ascii_case(&damaged));
            }
        }
    }
}

//! The sessions every system holds, the same for all: session `n` belongs to user `n / 10`, has
//! a ~200-byte record and a 12 h TTL. Ids are derived from the numbers, so each run finds what an
//! earlier run seeded.

use serde::Serialize;
use uuid::Uuid;

pub const DOMAIN: &str = "bench.example";
pub const SESSIONS_PER_USER: u64 = 10;
pub const TTL_SECS: u64 = 12 * 3600;
/// Users 0..100 are logged out whole (one each round), users 100..200 are listed; both exist in
/// sessionplane's directory, since its API resolves the user it is given.
pub const REVOKED_USERS: u64 = 100;
pub const LISTED_USERS: u64 = 100;
pub const DIRECTORY_USERS: u64 = REVOKED_USERS + LISTED_USERS;
/// Sessions revoked one by one are taken from here on (users that are neither of the above).
pub const FIRST_SINGLE_REVOCATION: u64 = 10_000;
/// Sessions of the create workload, numbered apart from the seeded ones.
pub const FIRST_CREATED: u64 = 1 << 40;

const SESSION_BASE: u128 = 0x5e55_0000_0000_7000_8000_0000_0000_0000;
const USER_BASE: u128 = 0x0005_e400_0000_7000_8000_0000_0000_0000;

/// How a system names users: sessionplane's directory assigns the ids of the users it knows.
#[derive(Clone, Default)]
pub struct Dataset {
    pub directory_ids: Vec<Uuid>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Record {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub login: String,
    pub domain: &'static str,
    pub client_addr: &'static str,
    pub user_agent: String,
    pub ttl: u64,
}

impl Dataset {
    pub fn user_id(&self, user: u64) -> Uuid {
        self.directory_ids
            .get(user as usize)
            .copied()
            .unwrap_or(Uuid::from_u128(USER_BASE | user as u128))
    }

    pub fn session(&self, n: u64) -> Record {
        let user = n / SESSIONS_PER_USER;
        Record {
            session_id: session_id(n),
            user_id: self.user_id(user),
            login: login(user),
            domain: DOMAIN,
            client_addr: "203.0.113.45",
            user_agent: format!("Mozilla/5.0 (X11; Linux x86_64) Firefox/{}.0", 100 + n % 50),
            ttl: TTL_SECS,
        }
    }
}

pub fn session_id(n: u64) -> Uuid {
    Uuid::from_u128(SESSION_BASE | n as u128)
}

pub fn login(user: u64) -> String {
    format!("u{user:07}")
}

impl Record {
    /// The value etcd and Redis keep: the record as JSON (~200 bytes).
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_about_200_bytes_and_ids_do_not_collide() {
        let data = Dataset::default();
        let record = data.session(123_456);
        let size = record.json().len();
        assert!((180..=260).contains(&size), "{size} bytes");
        assert_ne!(session_id(1), session_id(2));
        assert_eq!(data.session(19).user_id, data.session(10).user_id);
        assert_ne!(data.session(20).user_id, data.session(19).user_id);
        assert_ne!(session_id(FIRST_CREATED), session_id(0));
    }

    #[test]
    fn directory_ids_replace_the_derived_ones() {
        let known = Uuid::now_v7();
        let data = Dataset {
            directory_ids: vec![known],
        };
        assert_eq!(data.session(5).user_id, known);
        assert_ne!(data.session(15).user_id, known);
    }
}

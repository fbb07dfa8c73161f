//! Password hashing: argon2id, off the async runtime, at most `threads` hashes at once.
//!
//! Verifying against an unknown user runs the same work against a stand-in hash, so a wrong
//! password and an unknown user take about as long and get the same answer.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::{OnceCell, Semaphore};

use crate::config::Argon2Settings;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 parameters refused: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Failed(String),
    #[error("the hashing pool is gone")]
    PoolGone,
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    pool: Arc<Semaphore>,
    stand_in: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    /// `threads` 0: one per core.
    pub fn new(settings: &Argon2Settings, threads: usize) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Self {
            params,
            pool: Arc::new(Semaphore::new(threads)),
            stand_in: Arc::new(OnceCell::new()),
        })
    }

    /// A new PHC string (`$argon2id$...`) with a random salt.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2(params)
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| HashError::Failed(e.to_string()))
        })
        .await?
    }

    /// Whether `password` matches `hash`; with no hash (an unknown user), the same work is done
    /// against a stand-in and the answer is false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool, HashError> {
        let (hash, known) = match hash {
            Some(hash) => (hash.to_owned(), true),
            None => (self.stand_in().await?, false),
        };
        let params = self.params.clone();
        let password = password.to_owned();
        let matches = self
            .run(move || {
                PasswordHash::new(&hash).is_ok_and(|parsed| {
                    argon2(params)
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
            })
            .await?;
        Ok(matches && known)
    }

    async fn stand_in(&self) -> Result<String, HashError> {
        self.stand_in
            .get_or_try_init(|| async {
                let mut random = [0u8; 16];
                getrandom::fill(&mut random).map_err(|e| HashError::Failed(e.to_string()))?;
                let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
                self.hash(&password).await
            })
            .await
            .cloned()
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self.pool.acquire().await.map_err(|_| HashError::PoolGone)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| HashError::PoolGone)
    }
}

fn argon2(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// `bytes` random bytes from the OS, hex-encoded: generated passwords and secrets.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        let settings = Argon2Settings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        PasswordHasher::new(&settings, 2).unwrap()
    }

    #[tokio::test]
    async fn hashes_verify_and_differ_by_salt() {
        let hasher = cheap();
        let a = hasher.hash("correct horse").await.unwrap();
        let b = hasher.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_ne!(a, b);
        assert!(hasher.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!hasher.verify("correct horsE", Some(&a)).await.unwrap());
        assert!(!hasher.verify("", Some(&a)).await.unwrap());
        assert!(!hasher.verify("x", Some("not a hash")).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_matches() {
        let hasher = cheap();
        assert!(!hasher.verify("anything", None).await.unwrap());
        let stand_in = hasher.stand_in().await.unwrap();
        assert!(stand_in.starts_with("$argon2id$"));
    }

    #[test]
    fn owasp_parameters_are_the_default() {
        let hasher = PasswordHasher::new(&Argon2Settings::default(), 0).unwrap();
        assert_eq!(
            (
                hasher.params.m_cost(),
                hasher.params.t_cost(),
                hasher.params.p_cost()
            ),
            (19_456, 2, 1)
        );
    }
}

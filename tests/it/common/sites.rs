//! The two-site deployment most multi-site tests share: central (c1 c2 c3, ids 1-3) and east
//! (e1 e2 e3, ids 4-6), the directory voted by c1, c2 and e1 so that central alone holds its
//! quorum.

use std::sync::atomic::{AtomicU8, Ordering};

use super::{TestSite, Tuning};

/// Each deployment on its own pair of 127.0.x.0/24 networks, so that a packet filter rule
/// cuts exactly one deployment's WAN.
static NEXT_OCTET: AtomicU8 = AtomicU8::new(220);

/// Federation calls quick to give up and retry, as the multi-site tests want them.
pub fn quick_federation() -> Tuning {
    Tuning {
        federation: vec![
            "timeout_ms = 1500".into(),
            "retry_initial_ms = 200".into(),
            "retry_max_ms = 1000".into(),
        ],
        ..Tuning::default()
    }
}

/// Starts central and east with `tuning`, once every node has its administrator.
pub async fn central_and_east(tuning: Tuning) -> (TestSite, TestSite) {
    let octet = NEXT_OCTET.fetch_add(2, Ordering::SeqCst);
    let mut sites = TestSite::start_sites(
        &[("central", octet), ("east", octet + 1)],
        3,
        &[1, 2, 4],
        tuning,
    )
    .await;
    let east = sites.pop().expect("east");
    let central = sites.pop().expect("central");
    for i in 0..3 {
        central.wait_for_admin(i).await;
        east.wait_for_admin(i).await;
    }
    (central, east)
}

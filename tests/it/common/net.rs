//! Network faults between test nodes: packet filter rules that drop all traffic between two
//! sets of addresses (or address ranges), removed when the cut is dropped. Needs root and
//! iptables (`.ci/run` installs it).

use std::process::Command;

pub struct Cut {
    rules: Vec<Vec<String>>,
}

impl Cut {
    /// Drops everything between any address of `a` and any of `b`, both ways
    /// (`127.0.5.0/24`, `127.0.5.3/32`, ...).
    pub fn between(a: &[String], b: &[String]) -> Self {
        let mut rules: Vec<Vec<String>> = Vec::new();
        for x in a {
            for y in b {
                for (from, to) in [(x, y), (y, x)] {
                    let rule = ["INPUT", "-s", from, "-d", to, "-j", "DROP"];
                    rules.push(rule.iter().map(|s| s.to_string()).collect());
                }
            }
        }
        for rule in &rules {
            iptables("-I", rule);
        }
        Self { rules }
    }

    /// Cuts the 127.0.a.0/24 and 127.0.b.0/24 networks (two sites) apart.
    pub fn sites(a: u8, b: u8) -> Self {
        Self::between(&[format!("127.0.{a}.0/24")], &[format!("127.0.{b}.0/24")])
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for rule in &self.rules {
            iptables("-D", rule);
        }
    }
}

fn iptables(action: &str, rule: &[String]) {
    let status = Command::new("iptables")
        .arg(action)
        .args(rule)
        .status()
        .expect("iptables runs (.ci/run installs it; the tests run as root)");
    assert!(status.success(), "iptables {action} {rule:?} failed");
}

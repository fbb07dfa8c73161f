//! Real mail servers from Debian's packages, private to one test, for the IMAP and submission
//! proxies to stand in front of:
//!
//! - [`Dovecot`]: IMAP on a plain port (with STARTTLS) and on an implicit-TLS port, the users
//!   [`ALICE`] and [`BOB`] in a passwd-file, the master user [`MASTER_USER`] (log in as
//!   `alice@example.test*proxy`, or AUTHENTICATE PLAIN with authzid alice and authcid proxy),
//!   Maildirs under the temp dir, `auth_verbose` logging into a file, and an auth socket for
//!   Postfix's SASL;
//! - [`Postfix`]: a submission listener (STARTTLS, AUTH through that Dovecot, required for any
//!   recipient) delivering `example.test` into the Maildirs Dovecot serves; mail to any other
//!   domain is accepted from an authenticated sender and discarded.
//!
//! Everything (configs, sockets, queue, logs, certificates, mail) lives in one temp dir and
//! listens on the 127.0.0.1 ports the caller picked, so that tests run side by side; dropping
//! a server stops every process it started.
//!
//! Mail belongs to Debian's `mail` user (uid 8), not to the test's root: Dovecot's imap refuses
//! to run as root whatever `first_valid_uid` says ("Mail access not allowed for root"), and its
//! passwd-file refuses uid 0. Postfix's daemons run as `postfix` (it refuses a root
//! `mail_owner`), so the temp dir is opened to others for traversal (0711).
//!
//! Postfix stores a submitted message with LF line ends, after the trace fields it prepends
//! (Return-Path, X-Original-To, Delivered-To, Received): compare with
//! `stored.ends_with(&crlf_to_lf(sent))`.

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const DOMAIN: &str = "example.test";
pub const ALICE: &str = "alice@example.test";
pub const ALICE_PW: &str = "alice-mail-pw-7c1";
pub const BOB: &str = "bob@example.test";
pub const BOB_PW: &str = "bob-mail-pw-3e9";
/// Dovecot's master user (`auth_master_user_separator = *`).
pub const MASTER_USER: &str = "proxy";
const USERS: [(&str, &str); 2] = [(ALICE, ALICE_PW), (BOB, BOB_PW)];
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// A private Dovecot, `dovecot -F` in a process group of its own; stopped when dropped.
pub struct Dovecot {
    pub imap: u16,
    pub imaps: u16,
    master_password: String,
    dir: Arc<tempfile::TempDir>,
    child: Child,
}

impl Dovecot {
    /// Dovecot with IMAP on `imap` (STARTTLS offered) and implicit TLS on `imaps`.
    pub fn start(imap: u16, imaps: u16, master_password: &str) -> Self {
        Self::start_with(imap, imaps, master_password, "")
    }

    /// As `start`, with `extra` appended to dovecot.conf (a later setting wins).
    pub fn start_with(imap: u16, imaps: u16, master_password: &str, extra: &str) -> Self {
        let dir = Arc::new(mail_dir());
        let path = dir.path().to_path_buf();
        make_certificates(&path.join("tls"));
        write_users(&path, master_password);
        make_maildirs(&path);
        let conf = path.join("dovecot.conf");
        fs::write(&conf, dovecot_conf(&path, imap, imaps, extra)).expect("write dovecot.conf");
        let mut command = Command::new("dovecot");
        command.arg("-F").arg("-c").arg(conf);
        let child = spawn("dovecot", command, &path.join("dovecot.stderr"));
        let mut dovecot = Self {
            imap,
            imaps,
            master_password: master_password.to_string(),
            dir,
            child,
        };
        let logs = [path.join("dovecot.log"), path.join("dovecot.stderr")];
        wait_listening("dovecot", &mut dovecot.child, &[imap, imaps], &logs);
        dovecot
    }

    /// The temp dir that holds everything, Postfix's part included.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn conf(&self) -> PathBuf {
        self.dir().join("dovecot.conf")
    }

    /// The CA (PEM) that signed the servers' certificate: what a client should trust.
    pub fn ca_pem(&self) -> PathBuf {
        self.dir().join("tls/ca.pem")
    }

    /// The servers' certificate (`localhost` and 127.0.0.1) and key, PEM.
    pub fn cert_pem(&self) -> PathBuf {
        self.dir().join("tls/cert.pem")
    }

    pub fn key_pem(&self) -> PathBuf {
        self.dir().join("tls/key.pem")
    }

    /// The auth socket Postfix's `smtpd_sasl_type = dovecot` talks to.
    pub fn auth_socket(&self) -> PathBuf {
        self.dir().join("auth-postfix")
    }

    pub fn master_user(&self) -> &'static str {
        MASTER_USER
    }

    pub fn master_password(&self) -> &str {
        &self.master_password
    }

    /// Dovecot's log: logins, and with `auth_verbose` every failed attempt by user name.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("dovecot.log")).unwrap_or_default()
    }

    /// `doveadm who`: the users logged in now (a header line first when there are any).
    pub fn who(&self) -> String {
        let output = Command::new("doveadm")
            .arg("-c")
            .arg(self.conf())
            .arg("who")
            .output()
            .expect("doveadm runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "doveadm who failed: {stderr}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The Maildir of `user` (`alice@example.test`, or `alice` in [`DOMAIN`]).
    pub fn maildir(&self, user: &str) -> PathBuf {
        maildir_of(self.dir(), user)
    }

    /// Drops `message` into `user`'s Maildir as a delivery agent does: written into tmp/ under
    /// a unique name, given to the mail user, renamed into new/. Returns its path in new/.
    pub fn deliver(&self, user: &str, message: &[u8]) -> PathBuf {
        let maildir = self.maildir(user);
        let name = unique_name();
        let tmp = maildir.join("tmp").join(&name);
        fs::write(&tmp, message).expect("write the message into tmp/");
        let (uid, gid) = mail_owner();
        chown(&tmp, Some(uid), Some(gid)).expect("give the message to the mail user");
        let new = maildir.join("new").join(&name);
        fs::rename(tmp, &new).expect("move the message into new/");
        new
    }

    /// The messages in `user`'s Maildir (new/ and cur/), oldest first, as their files hold them.
    pub fn maildir_messages(&self, user: &str) -> Vec<Vec<u8>> {
        let maildir = self.maildir(user);
        for _ in 0..20 {
            if let Some(messages) = read_maildir(&maildir) {
                return messages;
            }
        }
        panic!("{} kept changing under the reader", maildir.display());
    }

    /// Waits until `user`'s Maildir holds at least `count` messages: them all.
    pub fn wait_for_messages(&self, user: &str, count: usize) -> Vec<Vec<u8>> {
        poll_maildir(self, user, count, String::new)
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        // SIGTERM to the master alone leaves imap processes with a client running: the whole
        // group (the master and all it forked) gets it.
        stop_group(&mut self.child);
    }
}

/// A private Postfix, `postfix start-fg`, sharing Dovecot's temp dir; stopped when dropped.
pub struct Postfix {
    pub submission: u16,
    dir: Arc<tempfile::TempDir>,
    child: Child,
}

impl Postfix {
    /// Postfix with its submission listener on `submission`, authenticating through and
    /// delivering to `dovecot`.
    pub fn start(dovecot: &Dovecot, submission: u16) -> Self {
        Self::start_with(dovecot, submission, "")
    }

    /// As `start`, with `extra` appended to main.cf (a later setting wins).
    pub fn start_with(dovecot: &Dovecot, submission: u16, extra: &str) -> Self {
        let dir = Arc::clone(&dovecot.dir);
        let path = dir.path().to_path_buf();
        let config = path.join("postfix");
        fs::create_dir(&config).expect("create postfix's config dir");
        // The queue dir is root's, its subdirectories are made by start-fg; so is the data
        // dir, which must not exist before: made by root, it would not be postfix's.
        fs::create_dir(path.join("postfix-queue")).expect("create postfix's queue dir");
        write_aged(
            &config.join("main.cf"),
            postfix_main_cf(&path, submission, extra),
        );
        write_aged(&config.join("master.cf"), postfix_master_cf(submission));
        write_aged(&config.join("vmailbox"), virtual_mailboxes());
        let mut command = Command::new("postfix");
        command.arg("-c").arg(config).arg("start-fg");
        let child = spawn("postfix", command, &path.join("postfix.stderr"));
        let mut postfix = Self {
            submission,
            dir,
            child,
        };
        let logs = [path.join("postfix.log"), path.join("postfix.stderr")];
        wait_listening("postfix", &mut postfix.child, &[submission], &logs);
        postfix
    }

    /// Postfix's config dir (main.cf, master.cf, vmailbox), for `postfix -c`.
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("postfix")
    }

    /// The CA (PEM) that signed the certificate STARTTLS presents (Dovecot's).
    pub fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }

    /// Postfix's log (`maillog_file`): connections, SASL logins, queue ids, deliveries.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("postfix.log")).unwrap_or_default()
    }

    /// The master's pid, from the pid file it keeps locked in our queue dir.
    fn master_pid(&self) -> Option<u32> {
        let pid_file = self.dir.path().join("postfix-queue/pid/master.pid");
        fs::read_to_string(pid_file).ok()?.trim().parse().ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        // start-fg's master runs in a session of its own under the postfix-script shell we
        // spawned; `postfix stop` signals exactly it (pid/master.pid in our queue dir), and it
        // stops its children. The shell then exits.
        let _ = Command::new("postfix")
            .arg("-c")
            .arg(self.config())
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if wait_for_exit(&mut self.child, STOP_TIMEOUT) {
            return;
        }
        // Still running: kill the master's process group (its session: Postfix's processes).
        if let Some(master) = self.master_pid() {
            signal_group("-KILL", &format!("-{master}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Both servers. Postfix is declared first, so it stops first.
pub struct MailServers {
    pub postfix: Postfix,
    pub dovecot: Dovecot,
}

impl MailServers {
    pub fn start(imap: u16, imaps: u16, submission: u16, master_password: &str) -> Self {
        let dovecot = Dovecot::start(imap, imaps, master_password);
        let postfix = Postfix::start(&dovecot, submission);
        Self { postfix, dovecot }
    }

    /// Waits until `user` has `count` messages, panicking with Postfix's log if not.
    pub fn delivered(&self, user: &str, count: usize) -> Vec<Vec<u8>> {
        poll_maildir(&self.dovecot, user, count, || self.postfix.log())
    }
}

/// Polls `user`'s Maildir until it holds `count` messages, panicking with `context()` if it
/// does not within DELIVERY_TIMEOUT.
fn poll_maildir(
    dovecot: &Dovecot,
    user: &str,
    count: usize,
    context: impl Fn() -> String,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let messages = dovecot.maildir_messages(user);
        if messages.len() >= count {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "{} messages for {user} after {DELIVERY_TIMEOUT:?}, {count} wanted\n{}",
            messages.len(),
            context()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `message` with its CRLF line ends made LF, as Postfix stores it.
pub fn crlf_to_lf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    for (i, &byte) in message.iter().enumerate() {
        if !(byte == b'\r' && message.get(i + 1) == Some(&b'\n')) {
            out.push(byte);
        }
    }
    out
}

/// Writes a Postfix config file dated 10 s back: Postfix reads a file changed within the last
/// second again and again, 300 ms apart, until it is older (1.5 s more at every start).
fn write_aged(path: &Path, contents: String) {
    fs::write(path, contents).expect("write a Postfix config file");
    let past = SystemTime::now() - Duration::from_secs(10);
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("open a Postfix config file");
    file.set_modified(past)
        .expect("date a Postfix config file back");
}

/// The temp dir, open to others for traversal: Dovecot's auth (user dovecot) and mail (user
/// mail) processes and Postfix's smtpd (user postfix) open paths under it.
fn mail_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("mail-")
        .tempdir()
        .expect("temp dir for the mail servers");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o711))
        .expect("open the mail temp dir for traversal");
    dir
}

/// A CA and a server certificate it signed, for `localhost` and 127.0.0.1 (EC P-256).
fn make_certificates(tls: &Path) {
    fs::create_dir(tls).expect("create the tls dir");
    openssl_req(
        tls,
        "-subj /CN=sessionplane-test-mail-ca -keyout ca-key.pem -out ca.pem",
    );
    let leaf = "-subj /CN=localhost -CA ca.pem -CAkey ca-key.pem -keyout key.pem -out cert.pem";
    let names = "-addext subjectAltName=DNS:localhost,IP:127.0.0.1";
    let not_ca = "-addext basicConstraints=critical,CA:FALSE";
    openssl_req(tls, &format!("{leaf} {names} {not_ca}"));
}

/// `openssl req -x509` in `dir` with a new P-256 key, valid 30 days, and `args` (split at
/// spaces).
fn openssl_req(dir: &Path, args: &str) {
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    let output = Command::new("openssl")
        .args(["req", "-x509", "-days", "30"])
        .args(new_key.split(' '))
        .args(args.split(' '))
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openssl req {args} failed: {stderr}"
    );
}

/// The users' and the master user's passwd-files ({PLAIN} passwords).
fn write_users(dir: &Path, master_password: &str) {
    assert!(
        !master_password.contains(&[':', '\n'][..]),
        "a master password a passwd-file can hold"
    );
    // The empty uid, gid, gecos, home, shell and extra fields make a line a userdb entry too
    // (with the password alone it is "not found from userdb"); uid 0 there would be refused.
    let users: String = USERS
        .iter()
        .map(|(user, password)| format!("{user}:{{PLAIN}}{password}::::::\n"))
        .collect();
    fs::write(dir.join("users"), users).expect("write the users' passwd-file");
    let master = format!("{MASTER_USER}:{{PLAIN}}{master_password}\n");
    fs::write(dir.join("masters"), master).expect("write the master users' passwd-file");
}

/// Every user's Maildir (cur, new, tmp), the whole mail tree the mail user's.
fn make_maildirs(dir: &Path) {
    for (user, _) in USERS {
        let maildir = maildir_of(dir, user);
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(maildir.join(sub)).expect("create a Maildir");
        }
    }
    chown_tree(&dir.join("mail"), mail_owner());
}

fn chown_tree(path: &Path, (uid, gid): (u32, u32)) {
    chown(path, Some(uid), Some(gid)).expect("give the mail tree to the mail user");
    if path.is_dir() {
        for entry in fs::read_dir(path).expect("list the mail tree") {
            chown_tree(&entry.expect("a mail tree entry").path(), (uid, gid));
        }
    }
}

fn maildir_of(dir: &Path, user: &str) -> PathBuf {
    let (local, domain) = user.split_once('@').unwrap_or((user, DOMAIN));
    dir.join("mail").join(domain).join(local).join("Maildir")
}

/// The uid and gid of the `mail` user (8 and 8 on Debian), who owns all mail.
fn mail_owner() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let line = passwd
        .lines()
        .find(|line| line.starts_with("mail:"))
        .expect("a `mail` user in /etc/passwd");
    let fields: Vec<&str> = line.split(':').collect();
    let id = |i: usize| -> u32 { fields[i].parse().expect("the mail user's numeric ids") };
    (id(2), id(3))
}

/// A Maildir file name: seconds, microseconds, pid and a counter (Dovecot orders new mail by
/// the first two).
fn unique_name() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970");
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let (secs, micros, pid) = (now.as_secs(), now.subsec_micros(), std::process::id());
    format!("{secs}.M{micros}P{pid}Q{n}.sessionplane-test")
}

/// The messages in new/ and cur/ oldest first; `None` when a file moved between the listing
/// and the read (Dovecot moves new/ to cur/, and renames a file when its flags change).
fn read_maildir(maildir: &Path) -> Option<Vec<Vec<u8>>> {
    let mut files = Vec::new();
    // new/ before cur/: a file moved in between is listed twice (kept once), never missed.
    for sub in ["new", "cur"] {
        for entry in fs::read_dir(maildir.join(sub)).expect("list a Maildir") {
            let path = entry.expect("a Maildir entry").path();
            let modified = fs::metadata(&path).and_then(|m| m.modified()).ok()?;
            files.push((modified, base_name(&path), path));
        }
    }
    files.sort();
    files.dedup_by(|a, b| a.1 == b.1);
    files
        .iter()
        .map(|(_, _, path)| fs::read(path).ok())
        .collect()
}

/// A Maildir file's name without its info part (`:2,` and the flags).
fn base_name(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.split(':').next().unwrap_or_default().to_string()
}

/// Starts `command` in a process group of its own, stdout and stderr into `output`.
fn spawn(what: &str, mut command: Command, output: &Path) -> Child {
    let out = fs::File::create(output).expect("create a daemon's output file");
    let err = out.try_clone().expect("clone a daemon's output file");
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    command
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not start ({e}): is Debian's package installed?"))
}

/// Waits until every port accepts connections, panicking with the tails of `logs` if `child`
/// exits first or the time runs out.
fn wait_listening(what: &str, child: &mut Child, ports: &[u16], logs: &[PathBuf]) {
    let deadline = Instant::now() + START_TIMEOUT;
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().expect("poll a daemon") {
                panic!(
                    "{what} exited ({status}) before listening on {port}\n{}",
                    tails(logs)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not listen on {port} within {START_TIMEOUT:?}\n{}",
                tails(logs)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if let Some(status) = child.try_wait().expect("poll a daemon") {
        panic!(
            "{what} exited ({status}): another process has its ports?\n{}",
            tails(logs)
        );
    }
}

/// The last 40 lines of each file.
fn tails(logs: &[PathBuf]) -> String {
    let mut out = String::new();
    for log in logs {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        out.push_str(&format!("--- {} ---\n{tail}\n", log.display()));
    }
    out
}

/// SIGTERM to `child`'s process group (its own: `spawn` made it), then waits; SIGKILL to the
/// group if the child outlives STOP_TIMEOUT.
fn stop_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    signal_group("-TERM", &group);
    if !wait_for_exit(child, STOP_TIMEOUT) {
        signal_group("-KILL", &group);
        let _ = child.wait();
    }
}

fn signal_group(signal: &str, group: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", group])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether `child` exited (and was reaped) within `timeout`.
fn wait_for_exit(child: &mut Child, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn dovecot_conf(dir: &Path, imap: u16, imaps: u16, extra: &str) -> String {
    let d = dir.display();
    let (uid, gid) = mail_owner();
    format!(
        r#"# A private Dovecot for one test (tests/it/common/mail_servers.rs); nothing included
# from /etc/dovecot, nothing outside {d}.
base_dir = {d}/dovecot
state_dir = {d}/dovecot-state
instance_name = dovecot-{imap}
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{d}/tls/cert.pem
ssl_key = <{d}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_verbose = yes
auth_failure_delay = 0
auth_master_user_separator = *
# imap refuses root: mail is the mail user's.
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{d}/mail/%d/%n/Maildir
passdb {{
  driver = passwd-file
  args = {d}/masters
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = {d}/users
}}
userdb {{
  driver = passwd-file
  args = {d}/users
  default_fields = home={d}/mail/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service auth {{
  unix_listener {d}/auth-postfix {{
    mode = 0666
  }}
}}
# No growing delay for repeated failures from 127.0.0.1.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
{extra}
"#
    )
}

fn postfix_main_cf(dir: &Path, submission: u16, extra: &str) -> String {
    let d = dir.display();
    let (uid, gid) = mail_owner();
    format!(
        r#"# A private Postfix for one test (tests/it/common/mail_servers.rs).
compatibility_level = 3.6
queue_directory = {d}/postfix-queue
data_directory = {d}/postfix-data
maillog_file_prefixes = {d}
maillog_file = {d}/postfix.log
syslog_name = postfix-{submission}
myhostname = mta.{DOMAIN}
mydomain = {DOMAIN}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
alias_maps =
alias_database =
local_recipient_maps =
relayhost =
biff = no
smtpd_banner = $myhostname ESMTP
smtpd_peername_lookup = no
smtpd_error_sleep_time = 0s
in_flow_delay = 0s
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {d}/auth-postfix
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_tls_security_level = may
smtpd_tls_cert_file = {d}/tls/cert.pem
smtpd_tls_key_file = {d}/tls/key.pem
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{d}/postfix/vmailbox
virtual_mailbox_base = {d}/mail
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_minimum_uid = {uid}
default_transport = discard:outbound mail is discarded in tests
relay_transport = discard:outbound mail is discarded in tests
local_header_rewrite_clients =
{extra}
"#
    )
}

/// Only the services a submission-to-Maildir Postfix uses, none chrooted (the paths into the
/// temp dir are absolute).
fn postfix_master_cf(submission: u16) -> String {
    format!(
        r#"# service type private unpriv chroot wakeup maxproc command
127.0.0.1:{submission} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"#
    )
}

/// Postfix's virtual_mailbox_maps: each user's Maildir under virtual_mailbox_base.
fn virtual_mailboxes() -> String {
    USERS
        .iter()
        .map(|(user, _)| {
            let (local, domain) = user.split_once('@').expect("a user@domain");
            format!("{user} {domain}/{local}/Maildir/\n")
        })
        .collect()
}

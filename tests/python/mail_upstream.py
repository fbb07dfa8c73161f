"""Python's standard IMAP and SMTP clients through a node that relays to real mail servers.
Exits non-zero with a message on the first failure.

Usage: mail_upstream.py --imap HOST:PORT --smtp HOST:PORT --user LOGIN@DOMAIN --password PW
                        --to ADDRESS --expected FILE
FILE holds the one message in the user's INBOX; it is also what is submitted to ADDRESS.
"""

import argparse
import base64
import imaplib
import smtplib


def split(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def fetch(imap, seq):
    typ, data = imap.fetch(seq, "(BODY.PEEK[])")
    assert typ == "OK", (typ, data)
    return data[0][1]


def imap_login(address, user, password, expected):
    with imaplib.IMAP4(*split(address), timeout=10) as imap:
        typ, _ = imap.login(user, password)
        assert typ == "OK", typ
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"1"], (typ, data)
        got = fetch(imap, "1")
        assert got == expected, "FETCH differs from the delivered message"
        typ, data = imap.append("INBOX", None, None, expected.replace(b"Subject:", b"Subject: again", 1))
        assert typ == "OK", (typ, data)
        typ, data = imap.select("INBOX")
        assert data == [b"2"], data
        assert fetch(imap, "2").startswith(expected[:10]), "APPEND then FETCH"
        typ, _ = imap.logout()


def imap_authenticate(address, user, password):
    with imaplib.IMAP4(*split(address), timeout=10) as imap:
        typ, _ = imap.authenticate("PLAIN", lambda _: f"\0{user}\0{password}".encode())
        assert typ == "OK", typ
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"2"], (typ, data)


def submit(address, user, password, to, message):
    with smtplib.SMTP(*split(address), timeout=10) as smtp:
        smtp.ehlo("python.test")
        assert smtp.has_extn("smtputf8") and smtp.has_extn("8bitmime"), smtp.esmtp_features
        smtp.login(user, password)
        refused = smtp.sendmail(user, [to], message)
        assert not refused, refused


def main():
    parser = argparse.ArgumentParser()
    for name in ("imap", "smtp", "user", "password", "to", "expected"):
        parser.add_argument("--" + name, required=True)
    args = parser.parse_args()
    with open(args.expected, "rb") as f:
        expected = f.read()
    imap_login(args.imap, args.user, args.password, expected)
    imap_authenticate(args.imap, args.user, args.password)
    submit(args.smtp, args.user, args.password, args.to, expected)
    print("python clients ok")


if __name__ == "__main__":
    main()

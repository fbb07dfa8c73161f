"""Python's standard IMAP and SMTP clients against a running node: a second, independent
implementation of each protocol. Exits non-zero with a message on the first failure.

Usage: mail_clients.py --ca CERT --user LOGIN@DOMAIN --password PW
                       [--imap HOST:PORT] [--imaps HOST:PORT] [--smtp HOST:PORT] [--smtps HOST:PORT]
"""

import argparse
import imaplib
import smtplib
import ssl
import sys


def split(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    # The test certificate names the loopback address and "localhost".
    ctx.check_hostname = False
    return ctx


def imap_starttls(address, ctx, user, password):
    host, port = split(address)
    with imaplib.IMAP4(host, port, timeout=10) as imap:
        assert "STARTTLS" in imap.capabilities, imap.capabilities
        assert "LOGINDISABLED" in imap.capabilities, imap.capabilities
        imap.starttls(ssl_context=ctx)
        typ, _ = imap.login(user, password)
        assert typ == "OK", typ
        typ, data = imap.select("INBOX")
        assert typ == "OK" and data == [b"0"], (typ, data)
        typ, data = imap.list()
        assert typ == "OK" and any(b"INBOX" in line for line in data), data
        typ, _ = imap.noop()
        assert typ == "OK", typ
        imap.logout()


def imap_tls(address, ctx, user, password):
    host, port = split(address)
    with imaplib.IMAP4_SSL(host, port, ssl_context=ctx, timeout=10) as imap:
        try:
            imap.login(user, password + "-wrong")
            raise AssertionError("a wrong password logged in")
        except imaplib.IMAP4.error:
            pass
        typ, _ = imap.login(user, password)
        assert typ == "OK", typ
        typ, data = imap.select("INBOX", readonly=True)
        assert typ == "OK", (typ, data)
        imap.logout()


def smtp_starttls(address, ctx, user, password):
    host, port = split(address)
    with smtplib.SMTP(host, port, timeout=10) as smtp:
        smtp.ehlo("python-client")
        assert smtp.has_extn("starttls"), smtp.esmtp_features
        assert not smtp.has_extn("auth"), "AUTH offered before TLS"
        smtp.starttls(context=ctx)
        smtp.ehlo("python-client")
        assert smtp.has_extn("auth"), smtp.esmtp_features
        smtp.login(user, password)
        code, message = smtp.mail("someone@example.com")
        assert code == 554 and b"5.3.2" in message, (code, message)
        code, _ = smtp.noop()
        assert code == 250, code


def smtp_tls(address, ctx, user, password):
    host, port = split(address)
    with smtplib.SMTP_SSL(host, port, context=ctx, timeout=10) as smtp:
        smtp.ehlo("python-client")
        try:
            smtp.login(user, password + "-wrong")
            raise AssertionError("a wrong password logged in")
        except smtplib.SMTPAuthenticationError as refused:
            assert refused.smtp_code == 535, refused
        smtp.login(user, password)


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--ca", "--user", "--password"):
        parser.add_argument(flag, required=True)
    # Each listener given is checked; the caller names the ones the node runs.
    for flag in ("--imap", "--imaps", "--smtp", "--smtps"):
        parser.add_argument(flag)
    args = parser.parse_args()
    ctx = context(args.ca)
    every = [
        ("IMAP STARTTLS", args.imap, imap_starttls),
        ("IMAPS", args.imaps, imap_tls),
        ("SMTP STARTTLS", args.smtp, smtp_starttls),
        ("SMTPS", args.smtps, smtp_tls),
    ]
    checks = [
        (name, lambda address=address, check=check: check(address, ctx, args.user, args.password))
        for name, address, check in every
        if address
    ]
    if not checks:
        print("no listener to check", file=sys.stderr)
        return 2
    for name, check in checks:
        try:
            check()
        except Exception as failure:  # noqa: BLE001 - report any failure with its check's name
            print(f"{name}: {type(failure).__name__}: {failure}", file=sys.stderr)
            return 1
        print(f"{name}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Unit tests of the ferry_install role's plugins (run by `scripts/fleet-test --unit`, from
scripts/test, with the venv's ansible-core). tests/tests/fleet.rs runs them for real against
hosts; these pin down the cases a fleet run cannot cheaply reach: every redaction rule,
every failure class, malformed keys, signatures and checksum lists."""

import base64
import os
import sys
import unittest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "roles", "ferry_install")
sys.path[:0] = [os.path.join(ROLE, "action_plugins"), os.path.join(ROLE, "filter_plugins")]

import ferry_install as filters  # noqa: E402
import ferry_install_report as report  # noqa: E402
import ferry_install_verify as verify  # noqa: E402


def keypair(key_id=bytes.fromhex("0102030405060700")):
    """A minisign-format public key file and a signer for signify embedded signatures."""
    sk = Ed25519PrivateKey.generate()
    pk = sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    text = "untrusted comment: minisign public key %016X\n%s\n" % (
        int.from_bytes(key_id, "little"),
        base64.b64encode(b"Ed" + key_id + pk).decode(),
    )

    def sign(message):
        payload = b"Ed" + key_id + sk.sign(message)
        return b"untrusted comment: signed\n" + base64.b64encode(payload) + b"\n" + message

    return text.encode(), sign


class Keys(unittest.TestCase):
    def test_key_id_is_little_endian_and_keeps_leading_zeros(self):
        text, _ = keypair(bytes.fromhex("efcdab8967452300"))
        key_id, raw_id, raw = verify.parse_public_key(text, "k.pub")
        self.assertEqual(key_id, "0023456789ABCDEF")
        self.assertEqual(len(raw), 32)
        self.assertEqual(verify.normalize_key_id("23456789abcdef"), "0023456789ABCDEF")

    def test_a_key_without_comment_line_is_read(self):
        text, _ = keypair()
        key_id, _, _ = verify.parse_public_key(text.split(b"\n", 1)[1], "k.pub")
        self.assertEqual(key_id, "0007060504030201")

    def test_malformed_keys_and_ids_are_refused(self):
        for bad in [b"", b"untrusted comment: x\n", b"not base64 !!\n", b"RWQ=\n", b"\xff\xfe"]:
            with self.assertRaises(verify.VerifyError):
                verify.parse_public_key(bad, "k.pub")
        for bad in ["", "xyz", "0" * 17, "12 34"]:
            with self.assertRaises(verify.VerifyError):
                verify.normalize_key_id(bad)


class Sums(unittest.TestCase):
    LIST = (
        "SHA256 (ferry-install-x86_64) = " + "a" * 64 + "\n"
        + "b" * 64 + "  hello.tar.zst\n"
    ).encode()

    def test_a_list_signed_by_the_key_verifies_and_parses(self):
        text, sign = keypair()
        _, raw_id, raw = verify.parse_public_key(text, "k.pub")
        message = verify.verify_embedded(sign(self.LIST), raw_id, raw, "SHA256SUMS.sig")
        self.assertEqual(
            verify.parse_sums(message, "SHA256SUMS.sig"),
            {"ferry-install-x86_64": "a" * 64, "hello.tar.zst": "b" * 64},
        )

    def test_another_key_or_an_altered_list_is_refused(self):
        text, _ = keypair()
        _, raw_id, raw = verify.parse_public_key(text, "k.pub")
        _, other = keypair(bytes.fromhex("1111111111111111"))
        with self.assertRaisesRegex(verify.VerifyError, "signed by key 1111111111111111"):
            verify.verify_embedded(other(self.LIST), raw_id, raw, "s")
        _, same_id_other_key = keypair()
        with self.assertRaisesRegex(verify.VerifyError, "does not verify"):
            verify.verify_embedded(same_id_other_key(self.LIST), raw_id, raw, "s")
        text2, sign2 = keypair()
        _, raw_id2, raw2 = verify.parse_public_key(text2, "k.pub")
        altered = sign2(self.LIST).replace(b"a" * 64, b"c" * 64)
        with self.assertRaisesRegex(verify.VerifyError, "altered or forged"):
            verify.verify_embedded(altered, raw_id2, raw2, "s")
        for bad in [b"", b"no comment\nline\n", b"untrusted comment: x\n!!\nmsg"]:
            with self.assertRaises(verify.VerifyError):
                verify.verify_embedded(bad, raw_id, raw, "s")

    def test_malformed_lists_are_refused(self):
        for bad in [b"SHA256 (x) = short\n", b"x\n", ("a" * 64 + "  x\n").encode() * 2]:
            with self.assertRaises(verify.VerifyError):
                verify.parse_sums(bad, "s")

    def test_elf_machine(self):
        self.assertEqual(verify.elf_machine(b"\x7fELF\x02\x01" + b"\0" * 12 + b"\x3e\x00"), 62)
        self.assertEqual(verify.elf_machine(b"\x7fELF\x02\x01" + b"\0" * 12 + b"\xb7\x00"), 183)
        self.assertIsNone(verify.elf_machine(b"#!/bin/sh\n"))


class Redaction(unittest.TestCase):
    def redacted(self, line):
        return report.redact_diff("--- a\n+++ a.new\n@@ -1 +1 @@\n" + line).split("\n")[-1]

    def test_secret_named_keys_lose_their_values(self):
        for line, want in [
            ('-password = "hunter2"', "-password = <redacted>"),
            ("+db_password: hunter2", "+db_password: <redacted>"),
            ('+  "apiKey": "abc",', '+  "apiKey": <redacted>'),
            ("+export SESSION_TOKEN=abc", "+export SESSION_TOKEN=<redacted>"),
            ('-# db_password = "hunter2"', "-# db_password = <redacted>"),
            ("+; secret=abc", "+; secret=<redacted>"),
            ("+private_key = abc", "+private_key = <redacted>"),
            ("+signing-key = abc", "+signing-key = <redacted>"),
        ]:
            self.assertEqual(self.redacted(line), want)

    def test_other_lines_stay(self):
        for line in [
            '+greeting = "Hello"',
            ' token_file = "/run/credentials/hello.service/admin-token"',
            "+password_min_length = 12",
            "+monkey = 1",
            "-log_level = info",
        ]:
            self.assertEqual(self.redacted(line), line)

    def test_url_passwords_and_pem_blocks(self):
        self.assertEqual(
            self.redacted('+database_url = "postgres://app:s3cret@db/app"'),
            '+database_url = "postgres://app:<redacted>@db/app"',
        )
        diff = (
            "--- a\n+++ a.new\n@@ -1,3 +1,3 @@\n+-----BEGIN EC PRIVATE KEY-----\n+MHcCAQ\n"
            "+AwEHoU\n+-----END EC PRIVATE KEY-----\n context\n"
        )
        out = report.redact_diff(diff)
        self.assertNotIn("MHcCAQ", out)
        self.assertNotIn("AwEHoU", out)
        self.assertIn("+-----END EC PRIVATE KEY-----\n context", out)

    def test_extra_words(self):
        line = "+pin_code = 1234"
        self.assertEqual(report.redact_diff(line, ["code"]), "+pin_code = <redacted>")


class Outcomes(unittest.TestCase):
    def outcome(self, run, command="install", ok=(0,)):
        action = report.ActionModule.__new__(report.ActionModule)
        return action._outcome(run, command, "/usr/local/sbin/ferry-install", 900, list(ok))

    def test_installer_exit_codes(self):
        doc = '{"schema":1,"ok":false,"error":{"exit_code":5,"message":"not healthy","causes":["rolled back"]}}'
        o = self.outcome({"rc": 5, "stdout": doc, "stderr": "", "delta": "0:00:01"})
        self.assertEqual(o["class"], "unhealthy")
        self.assertEqual(
            o["message"],
            "ferry-install exited 5 (unhealthy after start, rolled back to the previous "
            "release): not healthy: rolled back",
        )
        o = self.outcome({"rc": 0, "stdout": '{"ok":true,"result":{"changed":true,"message":"m"}}',
                          "delta": "x"})
        self.assertTrue(o["ok"])
        self.assertEqual(o["message"], "m")

    def test_status_not_installed_is_no_failure(self):
        doc = '{"ok":false,"error":{"exit_code":4,"message":"hello is not installed"}}'
        o = self.outcome({"rc": 4, "stdout": doc, "delta": "x"}, "status", (0, 4))
        self.assertTrue(o["ok"])
        self.assertEqual(o["class"], "precondition")

    def test_signal(self):
        o = self.outcome({"rc": -9, "stdout": "", "stderr": "bye\n", "delta": "x"})
        self.assertEqual(o["class"], "signal")
        self.assertEqual(o["message"], "ferry-install install was killed by SIGKILL; its last output: bye")

    def test_exec_errors(self):
        for rc, text in [(2, "[Errno 2 ENOENT] No such file or directory"),
                         (13, "[Errno 13 EACCES] Permission denied"),
                         (8, "[Errno 8 ENOEXEC] Exec format error")]:
            o = self.outcome({"rc": rc, "stdout": "", "stderr": "", "msg": "Error executing command."})
            self.assertEqual(o["class"], "exec")
            self.assertEqual(
                o["message"],
                "could not run /usr/local/sbin/ferry-install (ferry-install install): " + text,
            )

    def test_timeout_and_no_run(self):
        o = self.outcome({"failed": True, "msg": "Timed out", "timedout": {"period": 5}})
        self.assertEqual(o["class"], "timeout")
        self.assertIn("did not finish within 5 s", o["message"])
        o = self.outcome({"failed": True, "msg": "'x' is undefined"})
        self.assertEqual(o["class"], "no-report")
        self.assertEqual(o["message"], "ferry-install install did not run: 'x' is undefined")

    def test_no_json(self):
        o = self.outcome({"rc": 0, "stdout": "not JSON\n", "stderr": "", "delta": "x"})
        self.assertEqual(o["class"], "no-report")
        o = self.outcome({"rc": 3, "stdout": "", "stderr": "error: bad signature\n", "delta": "x"})
        self.assertEqual(o["class"], "verification")
        self.assertEqual(o["message"], "ferry-install exited 3 (verification failed), with no JSON "
                                       "report: error: bad signature")
        o = self.outcome({"rc": 77, "stdout": "[]", "stderr": "", "delta": "x"})
        self.assertEqual(o["class"], "exit-77")


class Filters(unittest.TestCase):
    @staticmethod
    def entry(path, kind="f", uid=0, mode="0644"):
        """A find/stat result as Ansible reports it (lstat: a symlink is one)."""
        m = int(mode, 8)
        return {"path": path, "uid": uid, "mode": mode, "isdir": kind == "d",
                "isreg": kind == "f", "islnk": kind == "l", "wgrp": bool(m & 0o020),
                "woth": bool(m & 0o002)}

    def judged(self, entries, **scope):
        return {w["path"]: w["why"] for w in filters.ferry_install_weak(entries, **scope)}

    def test_weak(self):
        e = self.entry
        entries = [
            e("/etc/ferry", "d", mode="0755"),
            e("/etc/ferry/keys", "d", mode="0777"),
            e("/etc/ferry/keys/a.pub", uid=1000),
            e("/etc/ferry/keys/b.pub", mode="0664"),
            e("/etc/ferry/keys/c.pub", "l", mode="0777"),
            {"exists": False},
        ]
        weak = filters.ferry_install_weak(entries)
        self.assertEqual([w["path"] for w in weak], [
            "/etc/ferry/keys", "/etc/ferry/keys/a.pub", "/etc/ferry/keys/b.pub",
            "/etc/ferry/keys/c.pub"])
        self.assertEqual([w["isdir"] for w in weak], [True, False, False, False])
        self.assertIn("owned by uid 1000", weak[1]["why"])
        self.assertIn("a symlink", weak[3]["why"])

    def test_weak_agrees_with_the_installer(self):
        """Each case as installer/src/keys.rs (check_tree(KEY_DIR, 1), and KEY_DIR's
        parent unless /etc) and installer/src/policy.rs (ETC_DIR, then a regular
        policy.toml) judge it: refused (the reason) or not (None)."""
        e = self.entry
        cases = [
            # The directories themselves.
            (e("/etc/ferry", "d"), None),
            (e("/etc/ferry", "d", mode="0775"), "group-writable"),
            (e("/etc/ferry", "d", uid=1000), "owned by uid 1000"),
            (e("/etc/ferry", "l", mode="0777"), "a symlink"),
            (e("/etc/ferry/keys", "d", mode="0757"), "writable by anyone"),
            (e("/etc/ferry/keys", "d", mode="1777"), "writable by anyone"),
            (e("/etc/ferry/keys", "l"), "a symlink"),
            (e("/etc/ferry/keys", "f"), "not a directory"),
            # What the keyring holds, and one level below: files, statements, directories.
            (e("/etc/ferry/keys/release.pub"), None),
            (e("/etc/ferry/keys/release.pub", mode="0600"), None),
            (e("/etc/ferry/keys/release.pub", mode="0664"), "group-writable"),
            (e("/etc/ferry/keys/release.pub", uid=1000), "owned by uid 1000"),
            (e("/etc/ferry/keys/release.pub", "l"), "a symlink"),
            (e("/etc/ferry/keys/.hidden.pub", mode="0666"), "writable by anyone"),
            (e("/etc/ferry/keys/notes.txt", uid=1000), "owned by uid 1000"),
            (e("/etc/ferry/keys/revoked", mode="0646"), "writable by anyone"),
            (e("/etc/ferry/keys/rotations", "d", mode="0700"), None),
            (e("/etc/ferry/keys/rotations", "d", uid=1000, mode="0755"), "owned by uid 1000"),
            (e("/etc/ferry/keys/rotations", "l"), "a symlink"),
            (e("/etc/ferry/keys/revocations/x.revocation", mode="0664"), "group-writable"),
            (e("/etc/ferry/keys/revocations/x.revocation", "l"), "a symlink"),
            (e("/etc/ferry/keys/revocations/old", "d", mode="0777"), "writable by anyone"),
            (e("/etc/ferry/keys/revocations/old", "l"), "a symlink"),
            # Below that, ferry-install neither reads nor checks anything.
            (e("/etc/ferry/keys/revocations/old/x.revocation", uid=1000, mode="0666"), None),
            (e("/etc/ferry/keys/revocations/old/y", "l"), None),
            # The policy: a regular file, root's, not group- or other-writable.
            (e("/etc/ferry/policy.toml"), None),
            (e("/etc/ferry/policy.toml", mode="0664"), "group-writable"),
            (e("/etc/ferry/policy.toml", uid=1000), "owned by uid 1000"),
            (e("/etc/ferry/policy.toml", "l"), "a symlink"),
            (e("/etc/ferry/policy.toml", "d"), "not a regular file"),
            # Nothing else under /etc/ferry.
            (e("/etc/ferry/README", uid=1000, mode="0666"), None),
            (e("/etc/ferry/old-keys", "d", mode="0777"), None),
            (e("/etc/ferry/old-keys/x.pub", "l"), None),
            (e("/etc/ferry/policy.toml.dpkg-old", uid=1000), None),
        ]
        for entry, why in cases:
            with self.subTest(path=entry["path"], entry=entry):
                got = self.judged([entry]).get(entry["path"])
                if why is None:
                    self.assertIsNone(got)
                else:
                    self.assertIsNotNone(got)
                    self.assertIn(why, got)

    def test_weak_with_another_key_dir(self):
        e = self.entry
        scope = {"key_dir": "/srv/ferry/keys", "dirs": ["/var/cache/ferry"]}
        got = self.judged([
            e("/srv/ferry", "d", mode="0775"),            # its parent: checked
            e("/srv/ferry/keys", "d"),
            e("/srv/ferry/keys/a.pub", uid=1000),
            e("/etc/ferry", "d"),
            e("/etc/ferry/keys/b.pub", uid=1000),        # not the keyring: not read
            e("/etc/ferry/policy.toml", mode="0666"),     # always the policy
            e("/var/cache/ferry", "d", uid=65534, mode="0777"),
            e("/var/cache/ferry/x.tar.zst", uid=65534),   # the role's rule: the directory
        ], **scope)
        self.assertEqual(sorted(got), ["/etc/ferry/policy.toml", "/srv/ferry",
                                       "/srv/ferry/keys/a.pub", "/var/cache/ferry"])
        # /etc is no parent to check (ferry-install checks it as a system directory).
        self.assertEqual(self.judged([e("/etc", "d", mode="0777")], key_dir="/etc/keys"), {})

    def test_stale_bundles(self):
        paths = ["/c/" + n for n in [
            "hello-1.0.0-linux-amd64.tar.zst", "hello-1.0.0-linux-amd64.tar.zst.minisig",
            "hello-2.0.0-rc1-linux-amd64.tar.zst", "hello-admin-1.0-linux-amd64.tar.zst",
            "other-1.0-linux-amd64.tar.zst", "hello.pub", "hello-1.1.0-linux-arm64.tar.zst"]]
        self.assertEqual(
            filters.ferry_install_stale_bundles(paths, "hello", ["1.1.0"], ["hello", "hello-admin"]),
            ["/c/hello-1.0.0-linux-amd64.tar.zst", "/c/hello-1.0.0-linux-amd64.tar.zst.minisig",
             "/c/hello-2.0.0-rc1-linux-amd64.tar.zst"],
        )

    def test_trust_places(self):
        results = [{"path": "/srv/release.pub", "item": {"src": "release.pub"}},
                   {"path": "/srv/x.pub", "item": {"src": "x.pub", "name": "next.pub"}}]
        self.assertEqual(
            filters.ferry_install_trust_places(results, "/etc/ferry/keys", ["/s/a.rotation"],
                                               ["/s/b.revocation"], "/s/p.toml", "/etc/ferry/policy.toml"),
            [{"src": "/srv/release.pub", "dest": "/etc/ferry/keys/release.pub"},
             {"src": "/srv/x.pub", "dest": "/etc/ferry/keys/next.pub"},
             {"src": "/s/a.rotation", "dest": "/etc/ferry/keys/rotations/a.rotation"},
             {"src": "/s/b.revocation", "dest": "/etc/ferry/keys/revocations/b.revocation"},
             {"src": "/s/p.toml", "dest": "/etc/ferry/policy.toml"}],
        )
        for bad in [[{"path": "/k", "item": {"name": "k.key"}}],
                    [{"path": "/k", "item": {"name": "../k.pub"}}],
                    [{"path": "/a/k.pub", "item": {}}, {"path": "/b/k.pub", "item": {}}]]:
            with self.assertRaises(Exception):
                filters.ferry_install_trust_places(bad, "/etc/ferry/keys")
        with self.assertRaises(Exception):
            filters.ferry_install_trust_places([], "/k", ["/s/a.pub"])


if __name__ == "__main__":
    unittest.main()

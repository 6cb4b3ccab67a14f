# Verifies, on the control node, what the role is about to send to hosts: a file (the
# installer) against a pinned SHA-256 and/or a SHA256SUMS list signed by a pinned release
# key, or a public key against its pinned key id. Runs in the controller's own Python (an
# action plugin, no module), so it needs nothing but ansible-core and its dependency
# `cryptography` (Ed25519).
#
#   ferry_install_verify:
#     file: PATH                 # or key: PATH with key_id: ID
#     sha256: HEX                # optional pin
#     sums: PATH/SHA256SUMS.sig  # optional: signify-embedded signed checksum list ...
#     sums_key: PATH             # ... verified with this minisign/signify public key ...
#     sums_key_id: ID            # ... whose key id must be this
#     arch: x86_64               # optional: an ELF file must be for this machine
#
# Returns `path` (the absolute path that was read: send exactly that file), `sha256`,
# `verified_by` (what vouched for it) and, for a key, `key_id`.
#
# Formats (as ferry writes them, see format/src/signify.rs, format/src/sums.rs):
#   public key:  ["untrusted comment: ...\n"] base64("Ed" | key id (8, LE) | Ed25519 key (32))
#   embedded signature: "untrusted comment: ...\n" base64("Ed" | key id | signature (64)) "\n"
#                       then the signed message (the checksum list)
#   checksum lines: "SHA256 (NAME) = HEX" (signify -C, sha256sum -c), or "HEX  NAME"

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

KEY_ID_RE = re.compile(r"^[0-9A-Fa-f]{1,16}$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
BSD_LINE = re.compile(r"^SHA256 \((?P<name>.+)\) = (?P<hex>[0-9a-fA-F]{64})$")
GNU_LINE = re.compile(r"^(?P<hex>[0-9a-fA-F]{64}) [ *](?P<name>.+)$")
# ELF e_machine values for the architectures ferry builds installers for (uname -m names).
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
MAX_TEXT = 1 << 20


class VerifyError(Exception):
    pass


def normalize_key_id(key_id):
    """Key ids as minisign prints them: 16 upper-case hex digits (leading zeros kept)."""
    text = to_text(key_id).strip()
    if not KEY_ID_RE.match(text):
        raise VerifyError(
            "%r is not a key id (16 hex digits, as in the .pub file's comment or "
            "`minisign -V` output)" % text
        )
    return text.upper().rjust(16, "0")


def parse_public_key(data, origin):
    """(key id, raw Ed25519 key) of a minisign or signify public key file."""
    if len(data) > 64 << 10:
        raise VerifyError("%s is not a public key file (%d bytes)" % (origin, len(data)))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("%s is not a public key file (not text)" % origin)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("untrusted comment:"):
        lines = lines[1:]
    if len(lines) != 1:
        raise VerifyError("%s is not a minisign public key file" % origin)
    try:
        raw = base64.b64decode(lines[0], validate=True)
    except (binascii.Error, ValueError):
        raise VerifyError("%s: the key line is not base64" % origin)
    if len(raw) != 42 or raw[:2] != b"Ed":
        raise VerifyError("%s is not an Ed25519 minisign public key" % origin)
    key_id = "%016X" % int.from_bytes(raw[2:10], "little")
    return key_id, raw[2:10], raw[10:]


def verify_embedded(data, key_raw_id, key, origin):
    """The message of a signify embedded signature file, if `key` signed it."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise VerifyError(
            "checking %s needs the Python package `cryptography` on the control node "
            "(ansible-core depends on it)" % origin
        )
    parts = data.split(b"\n", 2)
    if len(parts) != 3 or not parts[0].startswith(b"untrusted comment: "):
        raise VerifyError(
            "%s is not a signify embedded signature (comment line, signature line, "
            "signed text)" % origin
        )
    try:
        payload = base64.b64decode(parts[1].strip(), validate=True)
    except (binascii.Error, ValueError):
        raise VerifyError("%s: the signature line is not base64" % origin)
    if len(payload) != 74 or payload[:2] != b"Ed":
        raise VerifyError("%s: not an Ed25519 signify signature" % origin)
    if payload[2:10] != key_raw_id:
        raise VerifyError(
            "%s is signed by key %016X, not by the pinned release key"
            % (origin, int.from_bytes(payload[2:10], "little"))
        )
    message = parts[2]
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(payload[10:], message)
    except InvalidSignature:
        raise VerifyError(
            "%s: the signature does not verify with the release key: the list was "
            "altered or forged" % origin
        )
    return message


def parse_sums(message, origin):
    sums = {}
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise VerifyError("%s: the signed list is not text" % origin)
    for number, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        m = BSD_LINE.match(line) or GNU_LINE.match(line)
        if not m:
            raise VerifyError("%s line %d is not a SHA-256 checksum line" % (origin, number))
        name = m.group("name")
        if name in sums:
            raise VerifyError("%s lists %s twice" % (origin, name))
        sums[name] = m.group("hex").lower()
    return sums


def elf_machine(head):
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    return int.from_bytes(head[18:20], order)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        unknown = set(args) - {
            "file", "sha256", "sums", "sums_key", "sums_key_id", "arch", "key", "key_id",
        }
        try:
            if unknown:
                raise VerifyError("unknown arguments: %s" % ", ".join(sorted(unknown)))
            if bool(args.get("file")) == bool(args.get("key")):
                raise VerifyError("give either file or key")
            if args.get("key"):
                result.update(self._verify_key(args))
            else:
                result.update(self._verify_file(args))
        except VerifyError as e:
            result["failed"] = True
            result["msg"] = "refused on the control node: %s" % e
        result["changed"] = False
        return result

    def _local(self, path, what):
        if not path:
            raise VerifyError("no %s given" % what)
        try:
            found = self._find_needle("files", to_text(path))
        except AnsibleError:
            raise VerifyError("%s %s not found on the control node" % (what, path))
        return os.path.realpath(found)

    def _read_text(self, path, what):
        with open(path, "rb") as f:
            data = f.read(MAX_TEXT + 1)
        if len(data) > MAX_TEXT:
            raise VerifyError("%s %s is larger than 1 MiB" % (what, path))
        return data

    def _pinned_key(self, key, key_id, what):
        pinned = normalize_key_id(key_id) if key_id else None
        if not pinned:
            raise VerifyError("%s %s has no pinned key id" % (what, key))
        path = self._local(key, what)
        found, raw_id, raw = parse_public_key(self._read_text(path, what), path)
        if found != pinned:
            raise VerifyError(
                "%s %s is key %s, not the pinned %s" % (what, path, found, pinned)
            )
        return path, found, raw_id, raw

    def _verify_key(self, args):
        path, key_id, _, _ = self._pinned_key(args.get("key"), args.get("key_id"), "key")
        return {"path": path, "key_id": key_id, "verified_by": ["key id %s" % key_id]}

    def _verify_file(self, args):
        pin = to_text(args.get("sha256") or "").strip().lower()
        sums = args.get("sums")
        if pin and not SHA256_RE.match(pin):
            raise VerifyError("the pinned SHA-256 %r is not 64 hex digits" % pin)
        if not pin and not sums:
            raise VerifyError(
                "%s is not pinned: give its SHA-256, or a signed SHA256SUMS with the "
                "release key that lists it" % args.get("file")
            )
        if not args.get("file"):
            raise VerifyError("no installer given for this host's architecture (%s)"
                              % (args.get("arch") or "unknown"))
        path = self._local(args.get("file"), "file")
        if not os.path.isfile(path):
            raise VerifyError("%s is not a regular file" % path)
        digest = hashlib.sha256()
        head = b""
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                if not head:
                    head = chunk[:64]
                digest.update(chunk)
        actual = digest.hexdigest()
        verified_by = []
        if pin:
            if actual != pin:
                raise VerifyError(
                    "%s has SHA-256 %s, not the pinned %s: it was altered or is another "
                    "build" % (path, actual, pin)
                )
            verified_by.append("pinned SHA-256")
        if sums:
            sums_path = self._local(sums, "checksum list")
            _, key_id, raw_id, raw = self._pinned_key(
                args.get("sums_key"), args.get("sums_key_id"), "release key"
            )
            message = verify_embedded(
                self._read_text(sums_path, "checksum list"), raw_id, raw, sums_path
            )
            listed = parse_sums(message, sums_path)
            rel = os.path.relpath(path, os.path.dirname(sums_path))
            name = rel if not rel.startswith("..") else os.path.basename(path)
            if name not in listed:
                raise VerifyError("%s does not list %s" % (sums_path, name))
            if listed[name] != actual:
                raise VerifyError(
                    "%s has SHA-256 %s, but %s signed by %s lists %s: it was altered"
                    % (path, actual, sums_path, key_id, listed[name])
                )
            verified_by.append("%s signed by %s" % (os.path.basename(sums_path), key_id))
        arch = args.get("arch")
        machine = elf_machine(head)
        if arch and machine is not None and ELF_MACHINES.get(machine) != arch:
            raise VerifyError(
                "%s is an ELF binary for %s, the host is %s"
                % (path, ELF_MACHINES.get(machine, "machine %d" % machine), arch)
            )
        return {"path": path, "sha256": actual, "verified_by": verified_by}

# Filters of the ferry_install role (run on the control node).
#
#   ENTRIES | ferry_install_weak(KEY_DIR, ETC_DIR, POLICY_PATH, DIRS)
#       From ansible.builtin.find `files` and ansible.builtin.stat `stat` results (never
#       following links): those that ferry-install would refuse in its trust store and
#       policy (installer/src/keys.rs and policy.rs, like sshd's StrictModes), each as
#       {path, isdir, why}. Every judged entry must be root's and not group- or
#       other-writable; what ferry-install judges, and what else it demands:
#         ETC_DIR (/etc/ferry), KEY_DIR, KEY_DIR's parent (unless /etc), DIRS (the role
#           adds the bundle cache): directories, not symlinks;
#         KEY_DIR/NAME and KEY_DIR/SUB/NAME (keys, statements, `revoked`, their
#           directories): no symlinks;
#         POLICY_PATH (ETC_DIR/policy.toml): a regular file.
#       Nothing else: ferry-install neither reads nor checks other files under ETC_DIR, or
#       anything deeper in KEY_DIR, so neither does the role.
#
#   KEY_RESULTS | ferry_install_trust_places(KEY_DIR, ROTATIONS, REVOCATIONS, POLICY, POLICY_PATH)
#       What trust provisioning copies where, as [{src, dest}]: each verified key (the
#       ferry_install_verify results of a loop over ferry_trusted_keys) to KEY_DIR/NAME
#       (`name`, default the source's file name, which must end in .pub), rotation and
#       revocation statements to KEY_DIR/rotations/ and KEY_DIR/revocations/, the policy
#       to POLICY_PATH.
#
#   PATHS | ferry_install_stale_bundles(APP, KEPT_VERSIONS, INSTALLED_APPS)
#       The cached bundles (and .minisig files) of APP whose release is no longer kept.
#       Only names `APP-VERSION-linux-ARCH.tar.zst[.minisig]`, as `ferry build` writes
#       them, are considered; a name that also reads as another installed app's bundle
#       (APP `hello`, app `hello-admin`) is left alone.

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleFilterError

BUNDLE_NAME = re.compile(
    r"^(?P<stem>.+)-linux-(?P<arch>[a-z0-9_]+)\.tar\.zst(?:\.minisig)?$"
)


def _norm(path):
    path = os.path.normpath(path or "/")
    return "/" if path in ("/", "//") else path


def ferry_install_weak(entries, key_dir="/etc/ferry/keys", etc_dir="/etc/ferry",
                       policy_path=None, dirs=()):
    key_dir, etc_dir = _norm(key_dir), _norm(etc_dir)
    policy_path = _norm(policy_path or os.path.join(etc_dir, "policy.toml"))
    tops = {etc_dir, key_dir} | {_norm(d) for d in dirs or []}
    if os.path.dirname(key_dir) not in ("/", "/etc"):
        tops.add(os.path.dirname(key_dir))
    weak = {}
    for entry in entries or []:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        if entry.get("exists") is False:
            continue
        path = _norm(entry["path"])
        islnk = bool(entry.get("islnk"))
        isdir = bool(entry.get("isdir")) and not islnk
        isreg = bool(entry.get("isreg")) and not islnk
        rel = os.path.relpath(path, key_dir).split("/")
        in_keys = path.startswith(key_dir + "/") and len(rel) <= 2
        if path in tops:
            kind = None if isdir else "a symlink" if islnk else "not a directory"
        elif path == policy_path:
            kind = None if isreg else "a symlink" if islnk else "not a regular file"
        elif in_keys:
            kind = "a symlink" if islnk else None
        else:
            continue
        reasons = []
        # A symlink's own owner and mode mean nothing: that it is one is the reason.
        if not islnk and entry.get("uid") != 0:
            reasons.append("owned by uid %s" % entry.get("uid"))
        if not islnk and entry.get("wgrp"):
            reasons.append("group-writable")
        if not islnk and entry.get("woth"):
            reasons.append("writable by anyone")
        if kind:
            reasons.append(kind)
        if reasons:
            weak[path] = {
                "path": path,
                "isdir": isdir,
                "why": "%s (%s, mode %s)" % (path, ", ".join(reasons), entry.get("mode", "?")),
            }
    return [weak[p] for p in sorted(weak)]


def ferry_install_trust_places(key_results, key_dir, rotations=(), revocations=(),
                               policy="", policy_path="/etc/ferry/policy.toml"):
    places = []
    for res in key_results or []:
        item = res.get("item") or {}
        name = item.get("name") or os.path.basename(res["path"])
        if "/" in name or not name.endswith(".pub") or name.startswith("."):
            raise AnsibleFilterError(
                "trusted key name %r: a file name ending in .pub (ferry-install reads "
                "only *.pub)" % name
            )
        places.append({"src": res["path"], "dest": "%s/%s" % (key_dir, name)})
    for sources, sub, ext in ((rotations, "rotations", ".rotation"),
                              (revocations, "revocations", ".revocation")):
        for src in sources or []:
            name = os.path.basename(src)
            if not name.endswith(ext):
                raise AnsibleFilterError(
                    "%s: a %s statement's file name must end in %s (ferry-install reads "
                    "only those)" % (src, sub[:-1], ext)
                )
            places.append({"src": src, "dest": "%s/%s/%s" % (key_dir, sub, name)})
    if policy:
        places.append({"src": policy, "dest": policy_path})
    dests = [p["dest"] for p in places]
    if len(set(dests)) != len(dests):
        raise AnsibleFilterError("two trust files would go to the same place: %s" % dests)
    return places


def ferry_install_stale_bundles(paths, app, kept, apps=()):
    kept = set(kept or [])
    others = [a for a in (apps or []) if a != app and a.startswith(app + "-")]
    stale = []
    for path in paths or []:
        name = os.path.basename(path)
        m = BUNDLE_NAME.match(name)
        if not m or not m.group("stem").startswith(app + "-"):
            continue
        if any(name.startswith(other + "-") for other in others):
            continue
        version = m.group("stem")[len(app) + 1:]
        if version and version not in kept:
            stale.append(path)
    return sorted(stale)


class FilterModule:
    def filters(self):
        return {
            "ferry_install_weak": ferry_install_weak,
            "ferry_install_trust_places": ferry_install_trust_places,
            "ferry_install_stale_bundles": ferry_install_stale_bundles,
        }

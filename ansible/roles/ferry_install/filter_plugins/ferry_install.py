# Filters of the ferry_install role (run on the control node).
#
#   ENTRIES | ferry_install_weak
#       From ansible.builtin.find `files` and ansible.builtin.stat `stat` results: those
#       that someone other than root could have changed, as ferry-install judges its trust
#       store (like sshd's StrictModes): not owned by root, group- or other-writable, or
#       neither a directory nor a regular file (a symlink, a device). Each as
#       {path, isdir, why}.
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


def ferry_install_weak(entries):
    weak = []
    for entry in entries or []:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        if entry.get("exists") is False:
            continue
        reasons = []
        if entry.get("uid") != 0:
            reasons.append("owned by uid %s" % entry.get("uid"))
        if entry.get("wgrp"):
            reasons.append("group-writable")
        if entry.get("woth"):
            reasons.append("writable by anyone")
        if not entry.get("isdir") and not entry.get("isreg"):
            reasons.append("a symlink" if entry.get("islnk") else "not a file or directory")
        if reasons:
            weak.append(
                {
                    "path": entry["path"],
                    "isdir": bool(entry.get("isdir")) and not entry.get("islnk"),
                    "why": "%s (%s, mode %s)"
                    % (entry["path"], ", ".join(reasons), entry.get("mode", "?")),
                }
            )
    return sorted(weak, key=lambda w: w["path"])


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

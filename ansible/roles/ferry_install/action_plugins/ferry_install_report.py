# Turns a registered run of ferry-install (ansible.builtin.command with failed_when: false,
# or the failed result of its timeout) into Ansible's terms, on the control node:
#
#   ferry_install_report:
#     run: "{{ registered result }}"
#     command: install | rollback | status
#     installer: /usr/local/sbin/ferry-install     # for messages
#     timeout: 900                                 # the run's task timeout, for messages
#     ok_exit_codes: [0]                           # status: [0, 4] (4 = not installed)
#     secret_words: []                             # more key words whose values diffs hide
#
# Returns `changed` (install: the report's `changed`, also for a dry run; rollback: ran),
# `diff` (install: each config diff the installer reported, secrets redacted, for Ansible's
# --diff) and `outcome`:
#   {ok, class, exit_code, message, causes, result}
# `class` is one of ok, failed, usage, verification, precondition, unhealthy (installer exit
# codes 0-5), exit-N (any other), signal (killed), exec (could not be started: errno),
# timeout (Ansible stopped waiting), no-report (no JSON document where one was due).
# `message` is one line carrying the class, for `fail`. The task itself never fails: the
# role fails the host afterwards, with the message, once it has kept the report.

from __future__ import annotations

import errno
import json
import os
import re
import signal

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

EXIT_CLASSES = {
    0: ("ok", "ok"),
    1: ("failed", "failed"),
    2: ("usage", "usage"),
    3: ("verification", "verification failed"),
    4: ("precondition", "precondition or policy not met; nothing changed"),
    5: ("unhealthy", "unhealthy after start, rolled back to the previous release"),
}

# Words that make a config key secret-named (whole words of the key, split at _ - . and
# camelCase), and fragments that do so anywhere in it. The values of such keys, URL
# passwords and PEM private key blocks are replaced in diffs: a host's kept config may hold
# what an operator added by hand. Over-redaction only hides a harmless value.
SECRET_WORDS = {
    "pass", "password", "passwd", "passphrase", "pwd", "secret", "secrets", "token",
    "tokens", "credential", "credentials", "key", "apikey", "auth", "authorization",
    "salt", "hmac", "cookie", "session", "signing", "seed", "dsn", "private", "cert",
}
SECRET_FRAGMENTS = (
    "password", "passwd", "passphrase", "secret", "token", "credential", "apikey",
    "privatekey", "accesskey", "secretkey",
)
# A key whose last word is one of these describes a secret (where it is, how long it
# lives) rather than holding one: `token_file = "/run/credentials/..."` stays readable.
DESCRIPTIVE = {
    "file", "files", "path", "paths", "dir", "directory", "name", "names", "ttl", "timeout",
    "length", "len", "size", "count", "min", "max", "enabled", "required", "mode", "type",
    "format", "algorithm",
}
REDACTED = "<redacted>"
# `key = value`, `key: value`, `"key": value`, `export KEY=value`, also commented out
# (`# key = value`, `; key = value`, `// key: value`).
ASSIGNMENT = re.compile(
    r"^(?P<lead>\s*(?:(?:#+|;+|//)\s*)?(?:export\s+)?[\"']?)(?P<key>[A-Za-z0-9_.@\-]+)"
    r"(?P<sep>[\"']?\s*[:=]\s*)(?P<value>\S.*)$"
)
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(?=@)")
PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
PEM_END = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY-----")


def key_words(key):
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def secret_key(key, extra):
    words = key_words(key)
    if not words or (words[-1] in DESCRIPTIVE and len(words) > 1):
        return False
    joined = "".join(words)
    return any(w in SECRET_WORDS or w in extra for w in words) or any(
        f in joined for f in SECRET_FRAGMENTS
    )


def redact_diff(diff, extra=()):
    """The diff with secret values replaced, line by line (headers and hunks kept)."""
    extra = {w.lower() for w in extra}
    out = []
    in_pem = False
    for line in diff.split("\n"):
        if line.startswith(("--- ", "+++ ", "@@")) or not line:
            out.append(line)
            continue
        mark, body = line[0], line[1:]
        if in_pem:
            if PEM_END.search(body):
                in_pem = False
                out.append(line)
            else:
                out.append(mark + REDACTED)
            continue
        if PEM_BEGIN.search(body):
            in_pem = not PEM_END.search(body)
            out.append(line if in_pem else mark + REDACTED)
            continue
        body = URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, body)
        m = ASSIGNMENT.match(body)
        if m and secret_key(m.group("key"), extra):
            body = m.group("lead") + m.group("key") + m.group("sep") + REDACTED
        out.append(mark + body)
    return "\n".join(out)


def signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def errno_text(number):
    name = errno.errorcode.get(number)
    return "[Errno %d%s] %s" % (number, " " + name if name else "", os.strerror(number))


def tail(text, lines=5):
    kept = [line for line in to_text(text or "").splitlines() if line.strip()]
    return " / ".join(kept[-lines:])


def parse_document(stdout):
    text = to_text(stdout or "").strip()
    if not text.startswith("{"):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    if not isinstance(doc, dict) or "ok" not in doc:
        return None
    if not isinstance(doc.get("result", {}), dict) or not isinstance(doc.get("error", {}), dict):
        return None
    return doc


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        run = args.get("run") or {}
        command = to_text(args.get("command") or "install")
        installer = to_text(args.get("installer") or "ferry-install")
        ok_codes = [int(c) for c in (args.get("ok_exit_codes") or [0])]
        extra_words = [to_text(w) for w in (args.get("secret_words") or [])]
        outcome = self._outcome(run, command, installer, args.get("timeout"), ok_codes)
        diffs = []
        report = outcome.get("result") or {}
        if command == "install" and isinstance(report.get("configs"), list):
            for config in report["configs"]:
                if isinstance(config, dict) and config.get("diff"):
                    config["diff"] = redact_diff(to_text(config["diff"]), extra_words)
                    diffs.append({"prepared": config["diff"].rstrip("\n")})
        changed = False
        if outcome["ok"]:
            if command == "install":
                changed = bool(report.get("changed"))
            elif command == "rollback":
                changed = True
        result.update(
            changed=changed,
            outcome=outcome,
            msg=outcome["message"],
        )
        if diffs:
            result["diff"] = diffs
        return result

    def _outcome(self, run, command, installer, timeout, ok_codes):
        what = "ferry-install %s" % command
        base = {"ok": False, "exit_code": None, "causes": [], "result": {}}
        if run.get("skipped"):
            return dict(base, ok=True, **{"class": "skipped", "message": "%s did not run" % what})
        timed_out = "rc" not in run and "timed out" in to_text(run.get("msg", "")).lower()
        if run.get("timedout") or timed_out:
            period = (run.get("timedout") or {}).get("period", timeout)
            return dict(base, **{
                "class": "timeout",
                "message": "%s did not finish within %s s (ferry_install_timeout): Ansible "
                           "stopped waiting for it but did not stop it; it may still be "
                           "running on the host, holding ferry-install's lock (another "
                           "run exits 4 until it ends)" % (what, period),
            })
        rc = run.get("rc")
        if rc is None:
            return dict(base, **{
                "class": "no-report",
                "message": "%s did not run: %s" % (what, to_text(run.get("msg") or "no result")),
            })
        rc = int(rc)
        stderr = tail(run.get("stderr"))
        if "delta" not in run and to_text(run.get("msg")) == "Error executing command.":
            return dict(base, exit_code=rc, **{
                "class": "exec",
                "message": "could not run %s (%s): %s" % (
                    installer, what,
                    errno_text(rc) if 0 < rc < 256 else "unexpected error (rc %d)" % rc),
            })
        if rc < 0:
            return dict(base, exit_code=rc, **{
                "class": "signal",
                "message": "%s was killed by %s%s" % (
                    what, signal_name(-rc), "; its last output: " + stderr if stderr else ""),
            })
        doc = parse_document(run.get("stdout"))
        cls, meaning = EXIT_CLASSES.get(rc, ("exit-%d" % rc, "unknown exit code"))
        if doc is None:
            stdout = to_text(run.get("stdout") or "").strip()
            shown = stdout[:200] + ("..." if len(stdout) > 200 else "")
            if rc in ok_codes:
                return dict(base, exit_code=rc, **{
                    "class": "no-report",
                    "message": "%s exited %d but printed no JSON report (stdout: %r%s)" % (
                        what, rc, shown, "; stderr: " + stderr if stderr else ""),
                })
            return dict(base, exit_code=rc, **{
                "class": cls,
                "message": "ferry-install exited %d (%s), with no JSON report: %s" % (
                    rc, meaning, stderr or repr(shown) or "no output"),
            })
        error = doc.get("error") or {}
        causes = [to_text(c) for c in error.get("causes") or []]
        if rc in ok_codes:
            return dict(base, ok=True, exit_code=rc, causes=causes, result=doc.get("result") or {},
                        error=error, **{
                            "class": cls,
                            "message": to_text((doc.get("result") or {}).get("message")
                                               or error.get("message") or "ok"),
                        })
        message = to_text(error.get("message") or stderr or "no message")
        return dict(base, exit_code=rc, causes=causes, result=doc.get("result") or {},
                    error=error, **{
                        "class": cls,
                        "message": "ferry-install exited %d (%s): %s" % (
                            rc, meaning, ": ".join([message] + causes)),
                    })

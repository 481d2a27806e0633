"""The generated configuration through a real Asterisk configuration checker (asterisklint),
and every dialplan application and function it uses against the Asterisk 22 documentation.

asterisklint (0.4) predates AudioSocket(), UUID() and PJSIP_TRANSFER_HANDLING(): those, and
only those, of its "missing" reports are accepted when the name is documented for Asterisk 22
(``data/asterisk22_dialplan.json``, one reference page each). Any other report fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from operadora.config import Settings, load_settings
from operadora.dialplan.render import render
from support import require

pytestmark = pytest.mark.unit

DATA = json.loads((Path(__file__).parent / "data" / "asterisk22_dialplan.json").read_text())
APPS = {name.lower() for name in DATA["applications"]}
FUNCS = {name.lower() for name in DATA["functions"]}
REFERENCE = Path(__file__).parents[3] / "shared/asterisk/recording-setup/extensions.conf"
ASTERISKLINT = Path(sys.executable).parent / "asterisklint"
MESSAGE = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+) (?P<code>[A-Z]_[A-Z_]+): (?P<text>.*)$")
MISSING = re.compile(r"(?:app|function) '(?P<name>[^']+)' does not exist")

CONFIG_CHECK = """
import sys
from asterisklint import FileConfigParser
parser = FileConfigParser()
parser.include(sys.argv[1])
for section in parser:
    print("SECTION", section.name, len(list(section)))
"""


def full_settings() -> Settings:
    return load_settings(
        asterisk={"servers": [{"password": "s3cret-ari", "app": "callcenter-ai"}]},
        hardware={"gateway_addresses": ["192.0.2.10", "192.0.2.11:5062"]},
        dialplan={
            "trunk_host": "sip.example.net",
            "trunk_username": "acme",
            "trunk_password": "s3cret-trunk",
            "dahdi_group": 0,
            "queue_members": ["PJSIP/agent1", "PJSIP/agent2"],
        },
    )


def lint(path: Path, command: str = "dialplan-check") -> tuple[list[dict[str, str]], str]:
    proc = subprocess.run(
        [str(ASTERISKLINT), command, path.name],
        cwd=path.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    messages = [m.groupdict() for line in output.splitlines() if (m := MESSAGE.match(line))]
    return messages, output


def unexpected(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Reports that are not 'missing' for a name Asterisk 22 documents."""
    bad = []
    for msg in messages:
        missing = MISSING.search(msg["text"])
        known = APPS if msg["code"] == "E_APP_MISSING" else FUNCS
        if msg["code"] in ("E_APP_MISSING", "E_FUNC_MISSING") and missing:
            if missing.group("name").lower() in known:
                continue
        bad.append(msg)
    return bad


def used_names(path: Path) -> tuple[set[str], set[str]]:
    _, output = lint(path, "modules-show")
    apps_part, _, rest = output.partition("; Function providing modules used:")
    funcs_part, _, unknown = rest.partition("; WARNING:")
    apps = set(re.findall(r"(\w+)\(\)", apps_part))
    funcs = set(re.findall(r"(\w+)\(\)", funcs_part))
    unknown_apps, _, unknown_funcs = ("; WARNING:" + unknown).partition("unknown functions")
    apps |= set(re.findall(r"^;\s+(\w+)\s*$", unknown_apps, re.M))
    funcs |= {
        n for line in re.findall(r"^;\s+([\w, ]+)$", unknown_funcs, re.M) for n in line.split(", ")
    }
    return {a.lower() for a in apps}, {f.lower() for f in funcs if f}


def dialplan_file(tmp_path: Path, target: str) -> Path:
    files = render(full_settings(), target, show_secrets=True).files  # type: ignore[arg-type]
    path = tmp_path / "extensions.conf"
    if target == "asterisk":
        path.write_text(files["extensions.conf"])
    else:
        # FreePBX includes extensions_custom.conf in its extensions.conf after [globals],
        # which #includes globals_custom.conf: rebuild that frame for the checker
        header = "[general]\nstatic=yes\nwriteprotect=no\n\n[globals]\n"
        globals_lines = "".join(
            ln + "\n" for ln in files["globals_custom.conf"].splitlines() if not ln.startswith(";")
        )
        path.write_text(header + globals_lines + "\n" + files["extensions_custom.conf"])
    return path


@pytest.mark.parametrize("target", ["asterisk", "freepbx"])
def test_dialplan_passes_asterisklint(tmp_path: Path, target: str) -> None:
    path = dialplan_file(tmp_path, target)
    messages, output = lint(path)
    assert unexpected(messages) == [], output
    # the checker really read our dialplan: it saw the names it does not know
    names = {MISSING.search(m["text"]).group("name") for m in messages}  # type: ignore[union-attr]
    assert names == {"AudioSocket", "UUID", "PJSIP_TRANSFER_HANDLING"}


@pytest.mark.parametrize("target", ["asterisk", "freepbx"])
def test_every_application_and_function_is_documented_for_asterisk_22(
    tmp_path: Path, target: str
) -> None:
    apps, funcs = used_names(dialplan_file(tmp_path, target))
    assert {"stasis", "audiosocket", "queue", "answer", "dial", "execif"} <= apps
    assert {"uuid", "pjsip_transfer_handling", "channel", "callerid"} <= funcs
    assert apps <= APPS, apps - APPS
    assert funcs <= FUNCS, funcs - FUNCS


def test_the_checker_catches_a_broken_dialplan(tmp_path: Path) -> None:
    path = tmp_path / "extensions.conf"
    path.write_text(
        "[general]\n\n[globals]\n\n[call-center]\n"
        "exten => 1,1,Dail(PJSIP/x)\n same => n,Set(X=${UUDI()})\n same => n,Goto(nowhere,s,1)\n"
    )
    bad = unexpected(lint(path)[0])
    codes = {m["code"] for m in bad}
    assert "E_APP_MISSING" in codes and "E_FUNC_MISSING" in codes
    assert any("nowhere" in m["text"] for m in bad)


CONFIG_FILES = [
    ("asterisk", name) for name in ("ari.conf", "http.conf", "pjsip.conf", "queues.conf")
] + [
    ("freepbx", name)
    for name in (
        "ari_additional_custom.conf",
        "queues_custom.conf",
        "pjsip.endpoint_custom.conf",
        "pjsip.aor_custom.conf",
        "pjsip.identify_custom.conf",
        "pjsip.auth_custom.conf",
        "pjsip.registration_custom.conf",
    )
]


@pytest.mark.parametrize(("target", "name"), CONFIG_FILES)
def test_other_files_parse_cleanly_as_asterisk_config(
    tmp_path: Path, target: str, name: str
) -> None:
    text = render(full_settings(), target, show_secrets=True).files[name]  # type: ignore[arg-type]
    (tmp_path / name).write_text(text)
    proc = subprocess.run(
        [sys.executable, "-c", CONFIG_CHECK, name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = proc.stdout.splitlines()
    problems = [ln for ln in lines if not ln.startswith("SECTION")] + proc.stderr.splitlines()
    assert problems == []
    sections = [ln.split()[1] for ln in lines]
    assert sections and len(sections) == text.count("\n[")


def test_reference_dialplan_shares_our_style() -> None:
    """The acceptance setup's dialplan runs the same checker with the same verdict, and our
    AI, AudioSocket and queue routes use its argument forms."""
    require(REFERENCE.exists(), "shared/asterisk/recording-setup beside the checkout")
    ref = REFERENCE.read_text()
    ours = render(full_settings()).files["extensions.conf"]
    for pattern in (
        r"Stasis\(\$\{\w+\},inbound,\$\{EXTEN\}\)",
        r"AudioSocket\(\$\{\w+\},\$\{\w+\}\)",
        r"Queue\(support-queue,t,,,120\)",
        r"Set\(\w+=\$\{UUID\(\)\}\)",
        r"exten => s,1,Goto\(\d+,1\)",
    ):
        assert re.search(pattern, ref), pattern
        assert re.search(pattern, ours), pattern
    for context in ("[call-center]", "[ivr-menu]", "[outbound-callback]"):
        assert context in ref and context in ours


def test_reference_dialplan_uses_only_documented_names(tmp_path: Path) -> None:
    require(REFERENCE.exists(), "shared/asterisk/recording-setup beside the checkout")
    path = tmp_path / "extensions.conf"
    path.write_text(REFERENCE.read_text())
    messages, output = lint(path)
    # the reference writes "key = value" in [globals]; asterisklint only warns about spacing
    assert [m for m in unexpected(messages) if m["code"] != "W_WSH_VARSET"] == [], output
    apps, funcs = used_names(path)
    assert apps <= APPS and funcs <= FUNCS

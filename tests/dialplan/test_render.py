"""What asterisk-config renders, from settings (pure)."""

from __future__ import annotations

import pytest

from operadora.config import load_settings
from operadora.dialplan.render import render

pytestmark = pytest.mark.unit

ARI = {"servers": [{"url": "http://127.0.0.1:8088/ari", "password": "ari-pass-123"}]}


def test_values_come_from_settings() -> None:
    settings = load_settings(
        asterisk={
            "servers": [
                {
                    "url": "http://10.1.1.1:8089/pbx/ari",
                    "username": "bot",
                    "app": "my-app",
                    "password": "x",
                }
            ],
            "media_address": "10.1.1.2:9999",
        },
        dialplan={
            "context": "ai-in",
            "ai_extension": "777",
            "queue_name": "ventas",
            "http_bind": "10.1.1.1",
        },
    )
    files = render(settings).files
    ext = files["extensions.conf"]
    assert "OPERADORA_APP=my-app\n" in ext and "OPERADORA_MEDIA=10.1.1.2:9999\n" in ext
    assert "[ai-in]\n" in ext and "exten => 777,1," in ext
    assert "Queue(ventas,t,,,120)" in ext
    assert "Goto(ai-in,777,1)" in ext  # the IVR's option 2
    assert "[bot]\ntype=user\n" in files["ari.conf"]
    http = files["http.conf"]
    assert "bindaddr=10.1.1.1\n" in http and "bindport=8089\n" in http and "prefix=pbx\n" in http
    assert "[ventas]\n" in files["queues.conf"]


def test_http_binds_loopback_by_default() -> None:
    http = render(load_settings(asterisk=ARI)).files["http.conf"]
    assert "bindaddr=127.0.0.1\n" in http and "prefix" not in http


def test_https_ari_url_gets_tls() -> None:
    settings = load_settings(
        asterisk={"servers": [{"url": "https://pbx.example.net:8089/ari", "password": "x"}]},
        dialplan={"http_bind": "0.0.0.0"},
    )
    config = render(settings)
    http = config.files["http.conf"]
    assert "tlsenable=yes\n" in http and "tlsbindaddr=0.0.0.0:8089\n" in http
    assert "bindaddr=127.0.0.1\n" in http and "bindport=8088\n" in http
    assert any("certificate" in n for n in config.notes)


def test_ai_route_sets_ari_only_transfer_handling_on_pjsip_then_enters_stasis() -> None:
    ext = render(load_settings(asterisk=ARI)).files["extensions.conf"]
    ai = ext[ext.index("exten => 110,1") : ext.index("exten => s,1")]
    lines = ai.splitlines()
    assert "PJSIP_TRANSFER_HANDLING()=ari-only" in lines[1] and '"PJSIP"' in lines[1]
    assert lines[2] == " same => n,Stasis(${OPERADORA_APP},inbound,${EXTEN})"
    assert "Answer()" not in ai  # Operadora answers through ARI
    off = render(load_settings(asterisk=ARI, dialplan={"ari_transfer_handling": False}))
    assert "PJSIP_TRANSFER_HANDLING" not in off.files["extensions.conf"]


def test_audiosocket_route_answers_first() -> None:
    ext = render(load_settings(asterisk=ARI)).files["extensions.conf"]
    block = ext[ext.index("exten => 100,1") :].split("\n\n")[0].splitlines()
    steps = [line.split(",", 1)[1] if "exten" in line else line.split("n,", 1)[1] for line in block]
    assert steps.index("Answer()") < next(i for i, s in enumerate(steps) if "AudioSocket(" in s)


def test_secrets_hidden_unless_asked() -> None:
    settings = load_settings(
        asterisk=ARI,
        dialplan={
            "trunk_host": "sip.example.net",
            "trunk_username": "u",
            "trunk_password": "trunk-pw-9",
        },
    )
    hidden = render(settings)
    text = "".join(hidden.files.values())
    assert "ari-pass-123" not in text and "trunk-pw-9" not in text
    assert "; password hidden: rerun with --show-secrets" in hidden.files["ari.conf"]
    assert "\npassword=" not in text  # no placeholder Asterisk could load as a password
    shown = "".join(render(settings, show_secrets=True).files.values())
    assert "password=ari-pass-123\n" in shown and "password=trunk-pw-9\n" in shown


def test_missing_ari_password_says_how_to_set_it() -> None:
    config = render(load_settings())
    assert any("ARI_PASSWORD" in note for note in config.notes)
    assert "password missing: set ARI_PASSWORD" in config.files["ari.conf"]


def test_gateways_become_pjsip_endpoints_named_for_detection() -> None:
    settings = load_settings(
        asterisk=ARI, hardware={"gateway_addresses": ["192.0.2.7", "[2001:db8::1]:5070"]}
    )
    pjsip = render(settings).files["pjsip.conf"]
    assert pjsip.count("[gateway-fxo-1]\n") == 3  # endpoint, aor, identify
    assert "contact=sip:192.0.2.7:5060\n" in pjsip and "match=192.0.2.7\n" in pjsip
    assert "match=2001:db8::1\n" in pjsip
    assert "context=call-center\n" in pjsip and "allow=ulaw,alaw\n" in pjsip
    ext = render(settings).files["extensions.conf"]
    assert "Dial(PJSIP/${EXTEN}@gateway-fxo-1,60)" in ext
    assert "Dial(PJSIP/${EXTEN}@gateway-fxo-2,60)" in ext


def test_outbound_route_order_and_no_route_note() -> None:
    settings = load_settings(
        asterisk=ARI,
        hardware={"gateway_addresses": ["192.0.2.7"]},
        dialplan={"dahdi_group": 1, "trunk_host": "sip.example.net"},
    )
    ext = render(settings).files["extensions.conf"]
    cb = ext[ext.index("[outbound-callback]") :]
    order = [cb.index(x) for x in ("DAHDI/g1/", "@gateway-fxo-1", "@operadora-trunk")]
    assert order == sorted(order)
    bare = render(load_settings(asterisk=ARI))
    assert "Congestion(5)" in bare.files["extensions.conf"]
    assert any("outbound-callback has no route" in n for n in bare.notes)


def test_freepbx_files() -> None:
    settings = load_settings(asterisk=ARI, hardware={"gateway_addresses": ["192.0.2.7"]})
    config = render(settings, "freepbx")
    assert set(config.files) == {
        "extensions_custom.conf",
        "globals_custom.conf",
        "ari_additional_custom.conf",
        "queues_custom.conf",
        "pjsip.endpoint_custom.conf",
        "pjsip.aor_custom.conf",
        "pjsip.identify_custom.conf",
    }
    ext = config.files["extensions_custom.conf"]
    assert "[globals]" not in ext and "[general]" not in ext  # FreePBX owns those
    assert "OPERADORA_APP=callcenter-ai\n" in config.files["globals_custom.conf"]
    assert "transport=0.0.0.0-udp\n" in config.files["pjsip.endpoint_custom.conf"]
    assert any("Advanced Settings" in n for n in config.notes)
    # FreePBX with no route of its own: callbacks go through its outbound routes
    assert (
        "Dial(Local/${EXTEN}@outbound-allroutes,60)"
        in render(load_settings(asterisk=ARI), "freepbx").files["extensions_custom.conf"]
    )


def test_server_by_name_and_bad_names() -> None:
    settings = load_settings(
        asterisk={
            "servers": [
                {"name": "a", "app": "app-a", "password": "x"},
                {"name": "b", "app": "app-b", "password": "y"},
            ]
        }
    )
    assert "OPERADORA_APP=app-b" in render(settings, server_name="b").files["extensions.conf"]
    with pytest.raises(ValueError, match="no Asterisk server named"):
        render(settings, server_name="c")
    bad_url = load_settings(asterisk={"servers": [{"url": "http://h:1/other"}]})
    with pytest.raises(ValueError, match="must end with /ari"):
        render(bad_url)

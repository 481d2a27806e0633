"""The dahdi_scan parser and card grouping, on fixtures written from dahdi_scan.c's format."""

from __future__ import annotations

from pathlib import Path

import pytest

from operadora.hardware.dahdi import (
    DahdiScanError,
    bearer_channels,
    card_model,
    group_cards,
    parse_dahdi_scan,
)
from operadora.hardware.models import DahdiSpan

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> list[DahdiSpan]:
    return parse_dahdi_scan((FIXTURES / name).read_text())


def test_analog_tdm2400p_ports_by_module() -> None:
    (span,) = load("wctdm24xxp_analog.txt")
    assert span.number == 1
    assert span.type == "analog" and not span.digital
    assert span.manufacturer == "Digium"
    assert span.location == "PCI Bus 03 Slot 01"
    assert (span.basechan, span.totchans, span.irq) == (1, 24, 0)
    assert [p.channel for p in span.ports] == list(range(1, 25))
    kinds = [p.kind for p in span.ports]
    assert kinds.count("FXO") == 8 and kinds.count("FXS") == 12 and kinds.count("none") == 4
    (card,) = group_cards([span])
    assert card.model == "TDM2400P"
    assert (card.fxo_ports, card.fxs_ports) == (8, 12)
    assert card.voice_channels == 20
    assert card.trunk_channels == 8  # only FXO modules take PSTN lines


def test_a200_failed_port_is_not_counted() -> None:
    (span,) = load("sangoma_a200_analog.txt")
    assert span.ports[3].kind == "FXS" and span.ports[3].failed
    (card,) = group_cards([span])
    assert card.model == "A200"
    assert card.manufacturer == "Sangoma Technologies"
    assert (card.fxo_ports, card.fxs_ports, card.trunk_channels) == (2, 1, 2)


def test_a400_analog_fxo() -> None:
    (card,) = group_cards(load("sangoma_a400_analog.txt"))
    assert (card.model, card.line_type, card.trunk_channels) == ("A400", "analog", 8)


def test_a104_four_e1_spans_one_in_red_alarm() -> None:
    spans = load("sangoma_a104_e1.txt")
    assert [s.number for s in spans] == [1, 2, 3, 4]
    assert [s.basechan for s in spans] == [1, 32, 63, 94]
    first = spans[0]
    assert first.type == "digital-E1" and first.line_type == "E1"
    assert first.coding == "HDB3" and first.framing == "CCS/CRC4"
    assert first.coding_opts == ["AMI", "HDB3"] and first.framing_opts == ["CCS", "CRC4"]
    assert first.syncsrc == 1 and first.lbo == "0 db (CSU)/0-133 feet (DSX-1)"
    assert spans[3].alarms == "RED"
    (card,) = group_cards(spans)
    assert card.model == "A104" and card.spans == [1, 2, 3, 4]
    assert card.voice_channels == 120  # the design's table: 4 E1 = 120
    assert card.trunk_channels == 90  # span 4 is down
    assert card.alarms == ["span 4: RED"]


def test_a108_eight_t1_spans() -> None:
    spans = load("sangoma_a108_t1.txt")
    assert len(spans) == 8 and all(s.line_type == "T1" for s in spans)
    (card,) = group_cards(spans)
    assert (card.model, card.voice_channels, card.trunk_channels) == ("A108", 192, 192)


def test_te435_mixed_alarms_and_unconfigured_span() -> None:
    spans = load("wcte43x_mixed.txt")
    assert spans[2].alarms == "YEL/LFA" and spans[2].framing == "CAS"
    assert spans[3].alarms == "UNCONFIGURED" and spans[3].type == ""
    (card,) = group_cards(spans)
    assert card.model == "TE435" and card.line_type == "E1"
    assert card.voice_channels == 90  # E1 CAS still gives 30; the unconfigured span none
    assert card.trunk_channels == 60
    assert card.alarms == ["span 3: YEL/LFA", "span 4: UNCONFIGURED"]


def test_two_cards_grouped_by_location() -> None:
    cards = group_cards(load("two_cards.txt"))
    assert [(c.model, c.line_type, c.trunk_channels) for c in cards] == [
        ("TDM410P", "analog", 2),
        ("TE131", "T1", 24),
    ]


@pytest.mark.parametrize(
    ("devicetype", "model"),
    [
        ("A104", "A104"),
        ("Sangoma A200D", "A200"),
        ("Wildcard TDM800P", "TDM800P"),
        ("Wildcard TE820 (5th Gen)", "TE820"),
        ("Wildcard AEX2400", "AEX2400"),
        ("Some Unknown Card", None),
    ],
)
def test_card_model_names(devicetype: str, model: str | None) -> None:
    assert card_model(DahdiSpan(number=1, devicetype=devicetype)) == model


def test_bri_has_two_bearers() -> None:
    span = DahdiSpan(number=1, type="digital-BRI", totchans=3, alarms="OK")
    assert bearer_channels(span) == 2


def test_empty_output_means_no_spans() -> None:
    assert parse_dahdi_scan("") == []
    assert parse_dahdi_scan("\n\n") == []


@pytest.mark.parametrize(
    "text",
    [
        "Unable to open /dev/dahdi/ctl: No such file or directory\n",
        "[1]\nactive=yes\nport=1,XYZ\n",
        "[1]\ntotchans=many\n",
        "alarms=OK\n",
    ],
)
def test_garbage_raises_a_clear_error(text: str) -> None:
    with pytest.raises(DahdiScanError, match="line"):
        parse_dahdi_scan(text)


def test_unknown_keys_are_ignored() -> None:
    (span,) = parse_dahdi_scan("[3]\nactive=yes\nalarms=OK\nfuture_key=1\ntype=analog\n")
    assert span.number == 3 and span.alarm_ok

"""The simulator's SIP user agent: PJSIP channels for real SIP calls over UDP.

What the acceptance Asterisk did in traces e1-e4 (``ari-traces/*.sip.txt``):

* ``INVITE`` from a phone: the endpoint is identified by the From user (``sipp`` ->
  endpoint ``sipp``, as ``endpoint_identifier_order=username,...``), ``100 Trying``, a channel
  ``PJSIP/<endpoint>-0000000N`` (state ``Ring``) runs the endpoint's context from the
  Request-URI's user (``110`` -> ``Stasis(callcenter-ai,inbound,110)``);
* the channel answered (ARI ``answer``, dialplan ``Answer()``) -> ``200 OK`` with SDP;
  the phone ``ACK`` s; RTP flows both ways (:mod:`operadora.sim.sip.rtp`);
* ARI ``DELETE /channels/{id}`` -> ``BYE`` (``Reason: Q.850;cause=16``); the phone's ``BYE`` ->
  ``200 OK`` and the channel hangs up (cause 16);
* ARI ``redirect`` of an unanswered channel -> ``302 Moved Temporarily`` with the target
  endpoint's AOR contact;
* ``REFER`` -> ``202 Accepted`` and the transfer (``operadora.sim.transfer``); its progress
  goes back as ``NOTIFY`` with a ``message/sipfrag`` body (``100 Trying``, ``200 OK``).

The transport is this :class:`asyncio.DatagramProtocol`; the SIP grammar lives in
:mod:`operadora.sim.sip.message` (pure). Malformed datagrams are dropped with one log line, or
answered ``400 Bad Request`` when they are requests we can address a response to.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from operadora.sim import transfer
from operadora.sim.dialplan.runner import start_dialplan
from operadora.sim.model import Channel, Party
from operadora.sim.sip.message import (
    NameAddr,
    SipParseError,
    SipRequest,
    SipResponse,
    make_response,
    missing_headers,
    parse_message,
    parse_name_addr,
    parse_uri,
)
from operadora.sim.sip.rtp import RtpSession
from operadora.sim.sip.sdp import MediaOffer, build_answer, choose_codec, parse_offer

if TYPE_CHECKING:
    from operadora.sim.endpoints import Endpoint
    from operadora.sim.pbx import Pbx

log = logging.getLogger(__name__)

T1 = 0.5  # RFC 3261 timers
T2 = 4.0
TIMEOUT = 64 * T1
LINGER_S = 5.0  # a finished dialog still answers retransmissions this long
ALLOW = "OPTIONS, INVITE, ACK, BYE, CANCEL, REFER"

# Q.850 cause -> SIP final response for a call hung up before it was answered
# (chan_pjsip's hangup_cause2sip; anything else ends the INVITE with 603 Decline)
CAUSE_SIP = {
    1: (404, "Not Found"),
    3: (404, "Not Found"),
    17: (486, "Busy Here"),
    18: (408, "Request Timeout"),
    19: (480, "Temporarily Unavailable"),
    20: (480, "Temporarily Unavailable"),
    21: (403, "Forbidden"),
    22: (410, "Gone"),
    27: (502, "Bad Gateway"),
    28: (484, "Address Incomplete"),
    29: (501, "Not Implemented"),
    31: (480, "Temporarily Unavailable"),
    34: (503, "Service Unavailable"),
    38: (500, "Server Internal Error"),
    42: (503, "Service Unavailable"),
    58: (488, "Not Acceptable Here"),
    127: (500, "Server Internal Error"),
}
# ARI transfer_progress state -> the sipfrag NOTIFYed to the phone (res_pjsip_refer)
SIPFRAG = {
    "channel_progress": "SIP/2.0 100 Trying",
    "channel_answered": "SIP/2.0 200 OK",
    "channel_unavailable": "SIP/2.0 503 Service Unavailable",
    "channel_declined": "SIP/2.0 603 Declined",
}

Address = tuple[str, int]


@dataclass(eq=False)
class Dialog:
    """One INVITE dialog with a phone, from the INVITE until it is torn down."""

    call_id: str
    invite: SipRequest
    remote: Address  # where the INVITE came from: responses and our requests go there
    remote_target: str  # the phone's Contact URI (Request-URI of our BYE/NOTIFY)
    remote_header: str  # the INVITE's From (our requests' To)
    local_header: str  # the INVITE's To with our tag (our requests' From)
    local_tag: str
    offer: MediaOffer
    payload_type: int
    endpoint: str
    exten: str
    domain: str
    caller: Party
    local_cseq: int = field(default_factory=lambda: random.randint(1000, 30000))
    channel: Channel | None = None
    rtp: RtpSession | None = None
    state: str = "early"  # early -> confirmed (200 OK sent) -> terminated
    final: SipResponse | None = None  # final answer to the INVITE, resent until ACK
    provisional: SipResponse | None = None
    redirect_contact: str | None = None
    remote_hung_up: bool = False
    refer_active: bool = False
    qos_done: bool = False
    sdp_version: int = field(default_factory=lambda: random.randint(1, 1 << 30))


class SipUserAgent(asyncio.DatagramProtocol):
    """UDP SIP on ``host:port`` for the simulated PJSIP endpoints of ``pbx``."""

    def __init__(self, pbx: Pbx, host: str, user_agent: str) -> None:
        self.pbx = pbx
        self.host = host
        self.user_agent = user_agent
        self.transport: asyncio.DatagramTransport | None = None
        self.dialogs: dict[str, Dialog] = {}
        self._retransmits: dict[tuple[str, int, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- lifecycle -----
    @classmethod
    async def start(cls, pbx: Pbx, host: str, port: int, user_agent: str) -> SipUserAgent:
        loop = asyncio.get_running_loop()
        _, ua = await loop.create_datagram_endpoint(
            lambda: cls(pbx, host, user_agent), local_addr=(host, port)
        )
        log.info("PBX simulator SIP (UDP) on %s:%s", host, ua.port)
        return ua

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    @property
    def contact(self) -> str:
        return f"<sip:{self.host}:{self.port}>"

    async def close(self) -> None:
        for task in [*self._tasks, *self._retransmits.values()]:
            task.cancel()
        for dialog in self.dialogs.values():
            if dialog.rtp is not None:
                dialog.rtp.close()
        self.dialogs.clear()
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        await asyncio.sleep(0)

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("SIP task failed", exc_info=task.exception())

    # ----- datagrams in -----
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        source = (addr[0], addr[1])
        try:
            message = parse_message(data)
        except SipParseError as exc:
            log.warning("dropped a malformed SIP datagram from %s:%s: %s", *source, exc)
            return
        try:
            if isinstance(message, SipRequest):
                self._request(message, source)
            else:
                self._response(message)
        except SipParseError as exc:
            self._bad_message(message, source, exc)
        except Exception:
            log.exception("SIP message from %s:%s failed", *source)

    def _bad_message(
        self, message: SipRequest | SipResponse, source: Address, exc: SipParseError
    ) -> None:
        """400 to a request we can address (RFC 3261 8.2), silence otherwise."""
        if isinstance(message, SipRequest) and message.method != "ACK":
            try:
                self._reply(message, source, 400, "Bad Request")
            except SipParseError:
                pass  # not even its Via makes sense: nowhere to answer
            else:
                log.warning("bad SIP %s from %s:%s: %s", message.method, *source, exc)
                return
        log.warning("dropped a malformed SIP message from %s:%s: %s", *source, exc)

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP socket error: %s", exc)

    # ----- requests -----
    def _request(self, req: SipRequest, source: Address) -> None:
        missing = missing_headers(req)
        if missing:
            if "Via" in missing or req.method == "ACK":
                log.warning("dropped SIP %s from %s:%s without %s", req.method, *source, missing)
                return
            self._reply(req, source, 400, f"Missing {missing[0]}")
            return
        _, cseq_method = req.cseq
        if cseq_method != req.method and not (req.method == "ACK" and cseq_method == "INVITE"):
            raise SipParseError(f"CSeq method {cseq_method} does not match {req.method}")
        to_tag = parse_name_addr(req.header("To") or "").tag
        from_ = parse_name_addr(req.header("From") or "")
        dialog = self.dialogs.get(req.call_id)
        method = req.method
        if method == "ACK":
            self._ack(req, dialog)
        elif method == "CANCEL":
            self._cancel(req, source, dialog)
        elif method == "INVITE" and to_tag is None:
            self._invite(req, source, from_, dialog)
        elif to_tag is None:
            if method == "OPTIONS":
                self._reply(
                    req, source, 200, "OK", [("Allow", ALLOW), ("Accept", "application/sdp")]
                )
            else:  # REGISTER, SUBSCRIBE, MESSAGE, ... out of dialog
                self._reply(req, source, 501, "Not Implemented", [("Allow", ALLOW)])
        elif dialog is None or dialog.local_tag != to_tag:
            self._reply(req, source, 481, "Call/Transaction Does Not Exist")
        elif method == "BYE":
            self._bye(req, source, dialog)
        elif method == "REFER":
            self._refer(req, source, dialog)
        elif method == "INVITE":
            self._reinvite(req, source, dialog)
        elif method in ("OPTIONS", "INFO"):
            self._reply(req, source, 200, "OK", to_tag=dialog.local_tag)
        else:
            self._reply(req, source, 501, "Not Implemented", [("Allow", ALLOW)])

    def _invite(
        self, req: SipRequest, source: Address, from_: NameAddr, dialog: Dialog | None
    ) -> None:
        if dialog is not None:  # a retransmission: repeat what we said last
            last = dialog.final or dialog.provisional
            if last is not None:
                self._send(last, dialog.remote)
            return
        endpoint = self._identify(from_)
        if endpoint is None:
            log.warning("SIP INVITE from %s:%s: no endpoint for %s", *source, from_.uri)
            self._reply(req, source, 403, "Forbidden", to_tag=self._new_tag())
            return
        content_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/sdp" or not req.body:
            self._reply(req, source, 488, "Not Acceptable Here", to_tag=self._new_tag())
            return
        try:
            offer = parse_offer(req.body)
        except SipParseError as exc:
            log.warning("SIP INVITE from %s:%s: bad SDP: %s", *source, exc)
            self._reply(req, source, 488, "Not Acceptable Here", to_tag=self._new_tag())
            return
        payload_type = choose_codec(offer)
        if payload_type is None:
            self._reply(req, source, 488, "Not Acceptable Here", to_tag=self._new_tag())
            return
        request_uri = parse_uri(req.uri)
        exten = request_uri.user or "s"
        if not self.pbx.config.dialplan.exists(endpoint.context, exten, 1):
            self._reply(req, source, 404, "Not Found", to_tag=self._new_tag())
            return
        contact = req.header("Contact")
        target = parse_name_addr(contact).uri if contact else from_.uri
        local_tag = self._new_tag()
        dialog = Dialog(
            call_id=req.call_id,
            invite=req,
            remote=source,
            remote_target=target,
            remote_header=req.header("From") or "",
            local_header=f"{req.header('To')};tag={local_tag}",
            local_tag=local_tag,
            offer=offer,
            payload_type=payload_type,
            endpoint=endpoint.resource,
            exten=exten,
            domain=request_uri.host,
            caller=Party(from_.display, from_.sip_uri().user),
        )
        self.dialogs[req.call_id] = dialog
        dialog.provisional = make_response(
            req, 100, "Trying", received=source, headers=[("Server", self.user_agent)]
        )
        self._send(dialog.provisional, source)
        self._spawn(self._start_channel(dialog, endpoint))

    def _identify(self, from_: NameAddr) -> Endpoint | None:
        """``endpoint_identifier_order=username,ip,anonymous``: the From user names the
        endpoint; no ``identify`` sections are simulated; else an endpoint ``anonymous``."""
        try:
            user = from_.sip_uri().user
        except SipParseError:
            user = ""
        endpoints = self.pbx.endpoints
        return (endpoints.get("PJSIP", user) if user else None) or endpoints.get(
            "PJSIP", "anonymous"
        )

    async def _start_channel(self, dialog: Dialog, endpoint: Endpoint) -> None:
        try:
            rtp = await RtpSession.open(
                self.host, dialog.payload_type, dialog.offer.telephone_event
            )
        except OSError as exc:
            log.error("SIP call %s: no RTP socket: %s", dialog.call_id, exc)
            if dialog.final is None:
                dialog.state = "terminated"
                self._final(
                    dialog,
                    self._invite_response(dialog, 500, "Server Internal Error"),
                )
            return
        if dialog.state == "terminated":  # CANCELled while the socket opened
            rtp.close()
            return
        dialog.rtp = rtp
        pbx = self.pbx
        ch = pbx.new_channel(
            f"PJSIP/{endpoint.resource}-{pbx.next_counter()}",
            "PJSIP",
            state="Ring",
            context=endpoint.context,
            exten=dialog.exten,
        )
        ch.caller = dialog.caller
        ch.pbx = True
        dialog.channel = ch
        pbx.emit("ChannelCreated", channel=ch)
        ch.protocol_id = dialog.call_id
        ch.remote_addr = f"{dialog.remote[0]}:{dialog.remote[1]}"
        pbx.set_variable(ch, "SIPDOMAIN", dialog.domain)

        def audio_in(frame: bytes) -> None:
            if ch.state == "Up":
                ch.receive(frame)

        rtp.on_audio = audio_in
        rtp.on_dtmf = lambda digit, ms: pbx.receive_dtmf(ch, digit, ms)
        ch.device_write = rtp.send_frame
        ch.device_dtmf = rtp.send_dtmf
        ch.rtp_stats = rtp.statistics
        ch.on_answer = lambda: self._answered(dialog)
        ch.before_hangup = lambda: self._qos(dialog)
        ch.close_device = lambda: self._channel_gone(dialog)
        ch.device_transfer = lambda state: self._notify_progress(dialog, state)
        ch.device_redirect = lambda contact: self._redirect(dialog, contact)
        log.info(
            "SIP call %s from %s -> %s@%s",
            dialog.call_id,
            dialog.endpoint,
            dialog.exten,
            endpoint.context,
            extra={"channel_id": ch.id, "call_id": dialog.call_id},
        )
        start_dialplan(pbx, ch, endpoint.context, dialog.exten, 1)

    def _answered(self, dialog: Dialog) -> None:
        """The channel is up: ``200 OK`` with our SDP answer, resent until the ACK."""
        if dialog.final is not None or dialog.rtp is None:
            return
        response = self._invite_response(
            dialog,
            200,
            "OK",
            headers=[
                ("Server", self.user_agent),
                ("Contact", self.contact),
                ("Allow", ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=self._sdp(dialog),
        )
        dialog.state = "confirmed"
        if dialog.rtp.remote is None:  # media flows from now on (no early media)
            dialog.rtp.remote = (dialog.offer.address, dialog.offer.port)
        self._final(dialog, response)

    def _sdp(self, dialog: Dialog) -> bytes:
        assert dialog.rtp is not None
        dialog.sdp_version += 1
        return build_answer(
            dialog.offer,
            address=self.host,
            port=dialog.rtp.local_port,
            payload_type=dialog.payload_type,
            session_id=abs(hash(dialog.call_id)) % (1 << 31),
            version=dialog.sdp_version,
        )

    def _final(self, dialog: Dialog, response: SipResponse) -> None:
        dialog.final = response
        self._send(response, dialog.remote)
        self._retransmit(("invite-final", 0, dialog.call_id), response, dialog.remote)

    def _ack(self, req: SipRequest, dialog: Dialog | None) -> None:
        if dialog is None:
            return
        self._stop_retransmit(("invite-final", 0, dialog.call_id))
        if dialog.final is not None and dialog.final.status >= 300:
            self._forget(dialog)

    def _cancel(self, req: SipRequest, source: Address, dialog: Dialog | None) -> None:
        if dialog is None:
            self._reply(req, source, 481, "Call/Transaction Does Not Exist")
            return
        self._reply(req, source, 200, "OK")
        if dialog.final is not None:
            return
        self._final(
            dialog,
            self._invite_response(dialog, 487, "Request Terminated"),
        )
        dialog.remote_hung_up = True
        ch = dialog.channel
        if ch is None:
            dialog.state = "terminated"
        elif not ch.destroyed:
            self.pbx.hangup_from_device(ch, 16)

    def _bye(self, req: SipRequest, source: Address, dialog: Dialog) -> None:
        self._reply(req, source, 200, "OK", [("Server", self.user_agent)], to_tag=dialog.local_tag)
        if dialog.remote_hung_up:
            return
        dialog.remote_hung_up = True
        self._stop_retransmit(("invite-final", 0, dialog.call_id))
        ch = dialog.channel
        if ch is not None and not ch.destroyed:
            self._qos(dialog)
            self.pbx.hangup_from_device(ch, 16)
        self._end(dialog)

    def _refer(self, req: SipRequest, source: Address, dialog: Dialog) -> None:
        refer_to = req.header("Refer-To")
        if not refer_to:
            self._reply(req, source, 400, "Missing Refer-To", to_tag=dialog.local_tag)
            return
        target = parse_name_addr(refer_to)
        if "replaces" in target.uri.lower():  # attended transfer: needs a second dialog
            self._reply(req, source, 501, "Not Implemented", to_tag=dialog.local_tag)
            return
        destination = target.sip_uri().user
        ch = dialog.channel
        if ch is None or ch.destroyed or dialog.state != "confirmed" or not destination:
            self._reply(req, source, 603, "Declined", to_tag=dialog.local_tag)
            return
        self._reply(
            req,
            source,
            202,
            "Accepted",
            [
                ("Expires", "600"),
                ("Contact", self.contact),
                ("Allow", ALLOW),
                ("Server", self.user_agent),
            ],
            to_tag=dialog.local_tag,
        )
        dialog.refer_active = True
        ari_only = ch.variables.get(transfer.ARI_ONLY_VARIABLE, "").lower() == "ari-only"
        if not ari_only:  # the core reports that it is on it (trace e3)
            self._notify_progress(dialog, "channel_progress")
        log.info(
            "SIP REFER on %s to %s (%s handling)",
            ch.name,
            destination,
            "ari-only" if ari_only else "core",
            extra={"channel_id": ch.id, "call_id": dialog.call_id},
        )
        transfer.refer(self.pbx, ch, destination)

    def _reinvite(self, req: SipRequest, source: Address, dialog: Dialog) -> None:
        """A re-INVITE (hold, a new media address): accept it with the same codec."""
        try:
            offer = parse_offer(req.body) if req.body else dialog.offer
        except SipParseError:
            self._reply(req, source, 488, "Not Acceptable Here", to_tag=dialog.local_tag)
            return
        if choose_codec(offer) != dialog.payload_type or dialog.rtp is None:
            self._reply(req, source, 488, "Not Acceptable Here", to_tag=dialog.local_tag)
            return
        dialog.offer = offer
        dialog.rtp.remote = (offer.address, offer.port)
        self._reply(
            req,
            source,
            200,
            "OK",
            [("Contact", self.contact), ("Content-Type", "application/sdp")],
            to_tag=dialog.local_tag,
            body=self._sdp(dialog),
        )

    # ----- the channel acts -----
    def _qos(self, dialog: Dialog) -> None:
        """``RTPAUDIOQOS*`` on an answered channel, before it goes (traces e1, e3, e4)."""
        ch, rtp = dialog.channel, dialog.rtp
        if dialog.qos_done or ch is None or rtp is None or dialog.state != "confirmed":
            return
        dialog.qos_done = True
        for name, value in rtp.qos_variables():
            self.pbx.set_variable(ch, name, value)

    def _redirect(self, dialog: Dialog, contact: str | None) -> None:
        dialog.redirect_contact = contact or ""

    def _channel_gone(self, dialog: Dialog) -> None:
        """The channel was destroyed: end the INVITE (unanswered) or send BYE."""
        ch = dialog.channel
        cause = ch.hangup_cause if ch is not None else 16
        if dialog.remote_hung_up:
            self._end(dialog)
            return
        if dialog.final is None:
            if dialog.redirect_contact:
                response = self._invite_response(
                    dialog,
                    302,
                    "Moved Temporarily",
                    headers=[
                        ("Server", self.user_agent),
                        ("Contact", f"<{dialog.redirect_contact}>"),
                        ("Reason", "Q.850;cause=0"),
                        ("Supported", "histinfo"),
                    ],
                )
            else:
                status, reason = (
                    (480, "Temporarily Unavailable")
                    if dialog.redirect_contact == ""
                    else CAUSE_SIP.get(cause, (603, "Decline"))
                )
                response = self._invite_response(
                    dialog,
                    status,
                    reason,
                    headers=[("Server", self.user_agent), ("Reason", f"Q.850;cause={cause}")],
                )
            dialog.state = "terminated"
            self._final(dialog, response)
            self._close_media(dialog)
            return
        bye = self._in_dialog_request(dialog, "BYE", [("Reason", f"Q.850;cause={cause or 16}")])
        self._send_request(dialog, bye)
        self._end(dialog)

    def _notify_progress(self, dialog: Dialog, state: str) -> None:
        """A NOTIFY with the transfer's progress as ``message/sipfrag`` (RFC 3515)."""
        if not dialog.refer_active or dialog.remote_hung_up or dialog.state != "confirmed":
            return
        frag = SIPFRAG.get(state)
        if frag is None:
            return
        final = state != "channel_progress"
        if final:
            dialog.refer_active = False
        subscription = "terminated;reason=noresource" if final else "active;expires=599"
        notify = self._in_dialog_request(
            dialog,
            "NOTIFY",
            [
                ("Event", "refer"),
                ("Subscription-State", subscription),
                ("Content-Type", "message/sipfrag;version=2.0"),
            ],
            body=f"{frag}\r\n".encode("ascii"),
        )
        self._send_request(dialog, notify)

    def _end(self, dialog: Dialog) -> None:
        dialog.state = "terminated"
        dialog.refer_active = False
        self._close_media(dialog)
        loop = asyncio.get_running_loop()
        loop.call_later(LINGER_S, self._forget, dialog)

    def _close_media(self, dialog: Dialog) -> None:
        if dialog.rtp is not None:
            dialog.rtp.close()

    def _forget(self, dialog: Dialog) -> None:
        self._close_media(dialog)
        if self.dialogs.get(dialog.call_id) is dialog:
            del self.dialogs[dialog.call_id]

    # ----- messages out -----
    def _new_tag(self) -> str:
        return str(uuid.uuid4())

    def _reply(
        self,
        req: SipRequest,
        source: Address,
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
        *,
        to_tag: str | None = None,
        body: bytes = b"",
    ) -> None:
        response = make_response(
            req, status, reason, received=source, to_tag=to_tag, headers=headers, body=body
        )
        self._send(response, source)

    def _invite_response(
        self,
        dialog: Dialog,
        status: int,
        reason: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
    ) -> SipResponse:
        """A response to the dialog's INVITE, with our To tag, sent back where it came from."""
        return make_response(
            dialog.invite,
            status,
            reason,
            received=dialog.remote,
            to_tag=dialog.local_tag,
            headers=headers,
            body=body,
        )

    def _in_dialog_request(
        self,
        dialog: Dialog,
        method: str,
        headers: list[tuple[str, str]],
        body: bytes = b"",
    ) -> SipRequest:
        dialog.local_cseq += 1
        req = SipRequest(method=method, uri=dialog.remote_target)
        req.add("Via", f"SIP/2.0/UDP {self.host}:{self.port};rport;branch=z9hG4bK{uuid.uuid4()}")
        req.add("From", dialog.local_header)
        req.add("To", dialog.remote_header)
        req.add("Contact", self.contact)
        req.add("Call-ID", dialog.call_id)
        req.add("CSeq", f"{dialog.local_cseq} {method}")
        for name, value in headers:
            req.add(name, value)
        req.add("Max-Forwards", "70")
        req.add("User-Agent", self.user_agent)
        req.body = body
        return req

    def _send_request(self, dialog: Dialog, req: SipRequest) -> None:
        self._send(req, dialog.remote)
        cseq, method = req.cseq
        self._retransmit((dialog.call_id, cseq, method), req, dialog.remote)

    def _send(self, message: SipRequest | SipResponse, to: Address) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.sendto(message.serialize(), to)

    def _retransmit(
        self, key: tuple[str, int, str], message: SipRequest | SipResponse, to: Address
    ) -> None:
        """UDP is unreliable: resend at T1, 2*T1, ... (at most T2 apart) until stopped."""
        self._stop_retransmit(key)

        async def run() -> None:
            interval, waited = T1, 0.0
            while waited < TIMEOUT:
                await asyncio.sleep(interval)
                waited += interval
                self._send(message, to)
                interval = min(interval * 2, T2)
            log.warning("SIP: no answer to %s %s", key[2], key[0])

        task = asyncio.get_running_loop().create_task(run())
        self._retransmits[key] = task
        task.add_done_callback(lambda t: self._retransmit_done(key, t))

    def _retransmit_done(self, key: tuple[str, int, str], task: asyncio.Task[None]) -> None:
        if self._retransmits.get(key) is task:
            del self._retransmits[key]

    def _stop_retransmit(self, key: tuple[str, int, str]) -> None:
        task = self._retransmits.pop(key, None)
        if task is not None:
            task.cancel()

    # ----- responses to our requests -----
    def _response(self, response: SipResponse) -> None:
        try:
            cseq, method = response.cseq
        except SipParseError:
            log.warning("dropped a SIP response with a bad CSeq")
            return
        if response.status >= 200:
            self._stop_retransmit((response.call_id, cseq, method))
        if response.status >= 300:
            log.info(
                "SIP %s %s answered %s %s",
                method,
                response.call_id,
                response.status,
                response.reason,
            )

"""SIP over UDP for the PBX simulator: real phones (sipp) call its PJSIP endpoints.

:mod:`.message` and :mod:`.sdp` are pure (bytes in, objects out); :mod:`.rtp` carries the
media; :mod:`.ua` is the user agent that turns INVITEs into ``PJSIP/...`` channels.
"""

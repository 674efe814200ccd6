"""The DICOM C-STORE listener (pynetdicom): verification and every storage SOP class with
every transfer syntax pynetdicom knows. Sites are admitted by calling AE title (see
service/sites.py); each association is one submission, and each stored instance takes
exactly the path of an HTTP upload (quarantine write, record, event).

pynetdicom runs each association in a thread of its own; handlers hand their work to the
service's event loop and wait for it, so a C-STORE success means the instance is written
and recorded (durable), and a slow store stalls only that sender.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from services.common.service import ServiceContext
from services.intake import domain
from services.intake.service import audit, receiving, sites, submissions

if TYPE_CHECKING:
    from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger("imarc.intake.dicom")

#: C-STORE statuses (PS3.4 Table B.2-1): stored; stored but held in quarantine (a warning,
#: with the reason code in ErrorComment); refused for now (the sender retries).
STORED, HELD, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xB000, 0xA700, 0xC000
#: How long one instance may take to be written and recorded before the sender is told
#: to retry.
STORE_TIMEOUT = 120.0


@dataclass
class _Association:
    collection: str
    site: str
    calling: str
    number: int
    submission: str | None = None
    stored: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class StoreScp:
    def __init__(self, ctx: ServiceContext, loop: asyncio.AbstractEventLoop) -> None:
        self.ctx = ctx
        self.loop = loop
        self.server: ThreadedAssociationServer | None = None
        self._associations: dict[int, _Association] = {}
        self._numbers = itertools.count(1)

    # -- running ------------------------------------------------------------------------

    def start(self, host: str, port: int) -> int:
        ae = AE(ae_title=self.ctx.settings.dicom_ae_title)
        for cx in AllStoragePresentationContexts:
            assert cx.abstract_syntax is not None
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.maximum_associations, ae.maximum_pdu_size = 20, 0
        handlers_: list[Any] = [
            (evt.EVT_CONN_OPEN, self._on_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, lambda event: STORED),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_gone),
            (evt.EVT_ABORTED, self._on_gone),
        ]
        server = ae.start_server((host, port), block=False, evt_handlers=handlers_)
        assert server is not None
        self.server = server
        bound = int(server.server_address[1])
        log.info("DICOM listener %s on port %d", ae.ae_title, bound)
        return bound

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None

    def _run(self, coro: Any, timeout: float = STORE_TIMEOUT) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    # -- events (each in its association's thread) ---------------------------------------

    @staticmethod
    def _on_open(event: Any) -> None:
        sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_requested(self, event: Any) -> None:
        rq = event.assoc.requestor
        calling = str(rq.primitive.calling_ae_title).strip()
        called = str(rq.primitive.called_ae_title).strip()
        admission = self._run(self._admit(calling, called, rq.address))
        if admission.refused:
            event.assoc.acse.send_reject(0x01, 0x01, admission.reason)
            event.assoc.kill()
            return
        self._associations[id(event.assoc)] = _Association(
            admission.collection, admission.site, calling, next(self._numbers)
        )

    async def _admit(self, calling: str, called: str, address: str) -> sites.Admission:
        async with self.ctx.messaging.transaction() as uow:
            admission = await sites.admit(
                uow.session, calling, called, self.ctx.settings.dicom_ae_title
            )
            if admission.refused:
                await audit.record(
                    uow.session,
                    [
                        audit.Entry(
                            actor=f"dicom:{calling}",
                            action="association_rejected",
                            collection=admission.collection or called[:64],
                            detail=f"{admission.refused} (from {address})",
                        )
                    ],
                    datetime.now(UTC),
                )
        if admission.refused:
            log.warning("association refused: %s", admission.refused)
        return admission

    def _on_gone(self, event: Any) -> None:
        self._associations.pop(id(event.assoc), None)

    def _on_store(self, event: Any) -> Dataset | int:
        a = self._associations.get(id(event.assoc))
        if a is None:
            return OUT_OF_RESOURCES
        data = event.encoded_dataset(include_meta=True)
        name = f"C-STORE from {a.calling}, association {a.number}, instance {next(a.stored)}"
        try:
            verdict = self._run(self._store(a, name, data))
        except receiving.StoreUnavailable:
            return OUT_OF_RESOURCES
        except TimeoutError:
            return OUT_OF_RESOURCES
        if isinstance(verdict, domain.Held):
            status = Dataset()
            status.Status = HELD
            status.ErrorComment = f"held: {verdict.code}"[:64]
            return status
        return STORED

    async def _store(self, a: _Association, name: str, data: bytes) -> domain.Verdict:
        if a.submission is None:
            async with self.ctx.messaging.transaction() as uow:
                sub = await submissions.open_submission(
                    uow.session, collection=a.collection, site=a.site, by=f"dicom:{a.calling}",
                    via="dicom",
                )  # fmt: skip
            a.submission = sub.id
        upload = receiving.Upload(name, lambda: data, size=len(data))
        result = await receiving.receive(
            self.ctx, a.collection, a.site, f"dicom:{a.calling}", [upload], a.submission
        )
        return result.files[0].verdict

"""Keeps an exchange's learned trust current: loads the newest stored trust
epoch, refits from everything the store holds, and stores each new epoch.

Every replica of the exchange shares the store, so an epoch fitted by one is
loaded by the others (``load_latest`` on a schedule). An epoch is written once:
when two replicas fit the same epoch number at once, the second keeps the first's.
"""

from __future__ import annotations

import itertools
import logging
import threading
from datetime import datetime
from typing import Callable, Iterable, Mapping

from numrep.core.errors import NumrepError
from numrep.core.model import Label

from numrep.store.base import Store
from numrep.trust import TrustModel, TrustSnapshot

log = logging.getLogger(__name__)

TRUST_EPOCHS_KEPT = 3  # the one served and two before it: a replica still reading one finds it whole

GoldSource = Callable[[], Mapping[str, bool]]  # number -> known truth (True = spam)
LabelSource = Callable[[], Iterable[Label]]  # labels to judge publishers by beyond the live ones


class TrustKeeper:
    def __init__(self, store: Store, model: TrustModel) -> None:
        self.store = store
        self.model = model
        self.gold_sources: list[GoldSource] = []
        self.overturned_sources: list[LabelSource] = []
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> TrustSnapshot:
        return self.model.snapshot

    def load_latest(self, *, even_same_epoch: bool = False) -> bool:
        """Install the newest stored epoch if it is newer than ours."""
        epoch = self.store.latest_trust_epoch()
        if epoch is None or epoch < self.model.epoch or (epoch == self.model.epoch and not even_same_epoch):
            return False
        latest = self.store.latest_trust_snapshot()
        if latest is None or latest[0] < epoch:  # a read behind the first (a store read at a low consistency)
            return False
        self.model.load(TrustSnapshot.from_json(latest[1]))
        log.info("trust: loaded epoch %d", latest[0])
        return True

    def gold(self) -> dict[str, bool]:
        """Known truths from every gold source (confirmed complaints, decided
        disputes); the regulator's own labels are gold inside the fit itself."""
        merged: dict[str, bool] = {}
        for source in self.gold_sources:
            merged.update(source())
        return merged

    def refit(self, now: datetime) -> TrustSnapshot:
        """Fit a new epoch from every live label and flag in the store, store it,
        and install it (or the epoch another replica stored first)."""
        with self._lock:
            self.load_latest()
            labels = itertools.chain(self.store.scan_label_votes(), *(source() for source in self.overturned_sources))
            fitted = self.model.refit(labels, self.gold(), flags=self.store.scan_flag_votes(), now=now)
            if not self.store.put_trust_snapshot(fitted.epoch, fitted.to_json(), fitted.fitted_at or now):
                log.warning("trust: epoch %d was stored by another replica first; using that one", fitted.epoch)
                self.load_latest(even_same_epoch=True)
            self._forget_older(self.model.epoch)
            return self.model.snapshot

    def _forget_older(self, epoch: int) -> None:
        """Only the newest epochs are kept: each holds every app reporter's record (tens of MB
        in a large federation), a refit stores one every few hours, and only the newest is read."""
        try:
            forgotten = self.store.forget_trust_snapshots(epoch - TRUST_EPOCHS_KEPT + 1)
        except NumrepError as exc:  # the epoch is stored and served; the next refit tries again
            log.warning("trust: epochs before %d stay stored for now: %s", epoch - TRUST_EPOCHS_KEPT + 1, exc.message)
            return
        if forgotten:
            log.info("trust: removed %d epoch(s) before %d", forgotten, epoch - TRUST_EPOCHS_KEPT + 1)

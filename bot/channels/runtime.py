"""The channels' and outbound side's parts, built once per app by the composition root."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from sqlalchemy.orm import Session, sessionmaker

from bot.channels.config import ChannelApps, load_apps
from bot.channels.gateway import Gateway
from bot.channels.kf import KfSync, sync_service_states
from bot.outbound.dispatcher import Dispatcher
from bot.outbound.platform import PlatformApi, corp_api, oa_api
from bot.outbound.quota import SlidingLimit
from bot.outbound.routing import ROBOT, WEBHOOK, Router, open_kfid_lookup
from bot.outbound.sender import Sender
from bot.outbound.senders import (
    AppMessageSender,
    KfSender,
    OACustomSender,
    RobotSender,
    WebhookSender,
)
from bot.pipeline import Pipeline
from bot.settings import Settings
from storage.scripts import ScriptLibrary
from storage.state import LockNotAcquired, StateStore, StateUnavailable

log = logging.getLogger(__name__)


@dataclass
class ChannelRuntime:
    apps: ChannelApps
    gateway: Gateway
    executor: ThreadPoolExecutor
    http: httpx.Client
    dispatcher: Dispatcher
    corp_apis: dict[str, PlatformApi]
    kf: dict[str, KfSync] = field(default_factory=dict)
    dispatching: bool = False
    sessions: sessionmaker[Session] | None = None
    state: StateStore | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _kf_thread: threading.Thread | None = None

    def pull_kf(self, app: str, open_kfid: str, token: str) -> Future[int] | None:
        """Pull in the background: WeCom wants its "success" within 5 s."""
        sync = self.kf.get(app)
        if sync is None or not open_kfid:
            log.warning("kf event for %s without a secret or open_kfid: not pulled", app)
            return None
        return self.executor.submit(sync.pull, open_kfid, token)

    def sync_kf_states(self) -> int:
        """One pass mirroring the handoff state onto kf service_state; returns calls that took.

        One worker at a time (a lock in the state store, not waited for); without the store,
        the pass runs anyway (a duplicate call only repeats the same state).
        """
        if not self.corp_apis or self.sessions is None:
            return 0
        if self.state is None:
            return sync_service_states(self.sessions, self.corp_apis)
        try:
            with self.state.lock("kf:service-state", ttl=60, wait=0):
                return sync_service_states(self.sessions, self.corp_apis)
        except LockNotAcquired:
            return 0
        except StateUnavailable:
            return sync_service_states(self.sessions, self.corp_apis)

    def _kf_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_kf_states()
            except Exception:  # the loop must outlive one bad pass; the trace is logged
                log.exception("kf service_state pass failed")
            self._stop.wait(self.dispatcher.interval)

    def start(self) -> None:
        if self.dispatching:
            self.dispatcher.start()
            if self.corp_apis and self.sessions is not None:
                self._kf_thread = threading.Thread(target=self._kf_loop, name="kf-state",
                                                   daemon=True)
                self._kf_thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._kf_thread is not None:
            self._kf_thread.join(10)
        self.dispatcher.stop()
        self.executor.shutdown(wait=True, cancel_futures=False)
        self.http.close()


def build_channels(settings: Settings, *, sessions: sessionmaker[Session], state: StateStore,
                   scripts: ScriptLibrary, pipeline: Pipeline,
                   apps: ChannelApps | None = None) -> ChannelRuntime:
    apps = apps or load_apps(settings)
    http = httpx.Client(timeout=settings.outbound_timeout)
    oa: dict[str, Sender] = {
        name: OACustomSender(oa_api(http, settings.wechat_api_base, state, app.app_id,
                                    app.secret))
        for name, app in apps.wechat.items() if app.secret
    }
    corp_apis = {
        name: corp_api(http, settings.wecom_api_base, state, corp_id=app.app_id,
                           secret=app.secret, name=name)
        for name, app in apps.wecom.items() if app.secret
    }
    kf_senders: dict[str, Sender] = {
        name: KfSender(api, open_kfid_lookup(sessions)) for name, api in corp_apis.items()
    }
    app_senders: dict[str, Sender] = {
        name: AppMessageSender(corp_apis[name], app.agent_id)
        for name, app in apps.wecom.items() if app.agent_id and name in corp_apis
    }
    groups: dict[str, tuple[str, Sender]] = {}
    for chat_id, route in settings.outbound_routes.items():
        kind, url = route.get("kind", WEBHOOK), route["url"]  # checked by load_apps
        groups[chat_id] = (kind, RobotSender(http, url) if kind == ROBOT
                           else WebhookSender(http, url))
    router = Router(oa=oa, default_oa=apps.default_wechat, kf=kf_senders, groups=groups,
                    apps=app_senders)
    dispatcher = Dispatcher(
        sessions, router, SlidingLimit(state, settings.robot_per_minute),
        lease=settings.outbound_lease_seconds, max_attempts=settings.outbound_max_attempts,
        interval=settings.outbound_interval, scripts=scripts,
        give_up=settings.outbound_give_up_minutes * 60,
        policy=settings.escalation_policy(), bot_name=settings.bot_name,
    )
    executor = ThreadPoolExecutor(max_workers=16, thread_name_prefix="channel")
    gateway = Gateway(sessions, state, scripts, pipeline, settings, executor)
    kf = {
        name: KfSync(app=name, api=api, sessions=sessions, state=state, pipeline=pipeline,
                     max_text=settings.max_text_chars)
        for name, api in corp_apis.items()
    }
    dispatching = settings.outbound_dispatch
    if dispatching is None:
        dispatching = bool(oa or kf_senders or groups)
    return ChannelRuntime(apps, gateway, executor, http, dispatcher, corp_apis, kf,
                          dispatching, sessions, state)

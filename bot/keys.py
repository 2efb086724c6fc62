"""The keys of the running service: the data keyring, built once per key configuration."""

from __future__ import annotations

from collections.abc import Callable

from bot.settings import Settings
from storage.crypto import Keyring, new_key_spec

_CACHE: dict[tuple[str, str, str, tuple[str, ...]], Keyring] = {}


def generated(settings: Settings, name: str, make: Callable[[], str]) -> str:
    """A secret generated once into the data dir (kept across restarts, readable by us only)."""
    path = settings.data_dir / name
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def build_keyring(settings: Settings) -> Keyring:
    """Seals personal numbers: CORECIRCLE_DATA_KEY (+ old keys), or keys in the data dir."""
    current = settings.data_key or generated(settings, "data_key", new_key_spec)
    hash_key = settings.data_hash_key or generated(
        settings, "data_hash_key", lambda: new_key_spec("h1")
    )
    return Keyring.from_specs(current, settings.data_old_keys, hash_key)


def keyring_for(settings: Settings) -> Keyring:
    """The same keyring for the same settings, without reading the key files every time."""
    key = (str(settings.data_dir.resolve()), settings.data_key or "",
           settings.data_hash_key or "", tuple(settings.data_old_keys))
    if key not in _CACHE:
        _CACHE[key] = build_keyring(settings)
    return _CACHE[key]

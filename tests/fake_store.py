"""A stand-in for pipeline.store.Store with what a feed Dataset reads of a store: its
head, the version's group (a dict of arrays) and the manifest. Fixtures set `arrays` and
`manifest` and monkeypatch `pipeline.store.Store` with it."""

from __future__ import annotations


class FakeStore:
    arrays: dict = {}
    manifest = None

    def __init__(self, path, create=False):
        pass

    def head(self):
        return "snap1"

    def group(self, snapshot=None):
        return self.arrays

    def table(self, name, snapshot=None):
        return self.manifest if name == "manifest" else None

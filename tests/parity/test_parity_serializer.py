"""The serializer side by side with huey 3.5.4's: with compression on, both read compressed and
old uncompressed data, and each reads what the other writes. (Compression and signing on their
own are tested in tests/core/test_serializer_rules.py, which needs no huey.)
"""

from __future__ import annotations

import pickle

import pytest

from huey_core import Serializer

huey_serializer = pytest.importorskip("huey.serializer")

VALUE = {"args": ("x" * 500,), "kwargs": {"n": list(range(50))}}


@pytest.mark.parametrize("use_zlib", [False, True])
def test_same_reads_as_huey_across_compression_settings(use_zlib):
    """With compression on, both read compressed and old uncompressed data; the bytes each
    writes compressed decompress to the same value in the other's reader (pickle payloads)."""
    theirs_on = huey_serializer.Serializer(compression=True, use_zlib=use_zlib)
    ours_on = Serializer(compression=True, use_zlib=use_zlib)
    plain = pickle.dumps(VALUE, protocol=4)
    assert theirs_on.deserialize(plain) == ours_on.deserialize(plain) == VALUE
    assert ours_on.deserialize(theirs_on.serialize(VALUE)) == VALUE
    assert theirs_on.deserialize(ours_on.serialize(VALUE)) == VALUE

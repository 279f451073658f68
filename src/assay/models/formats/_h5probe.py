"""The layout of an HDF5 file as JSON on stdout, read by h5py in a child process.

libhdf5 is C code that loops forever or crashes on some corrupt files (found by
fuzzing: a mutated object header makes reading an attribute spin without end), and
no Python-level timeout can interrupt it. Run as a script
(``python _h5probe.py PATH MAX_CONFIG MAX_MEMORY``), not imported: the parent kills it
after a time limit, and a crash ends only this process. It imports nothing of assay, so it starts in the time h5py takes.
"""

import json
import sys

MAX_DATASETS = 100_000


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    # h5py gives undecodable names and strings back with lone surrogates
    return v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else None


def probe(path, max_config):
    import h5py

    out = {"attrs": {}, "datasets": []}
    with h5py.File(path, "r") as f:
        for key in ("keras_version", "backend", "model_config"):
            v = f.attrs.get(key)
            if v is not None:
                t = _text(v)
                out["attrs"][key] = (t if t is not None else str(v))[: max_config + 1]
        found = []

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                found.append((name, obj))
            return None if len(found) < MAX_DATASETS else True  # stop visiting

        f.visititems(visit)
        for name, ds in found:
            out["datasets"].append([
                _text(name), ds.dtype.str, [int(d) for d in ds.shape], ds.id.get_offset(),
                int(ds.id.get_storage_size()), ds.chunks is not None or bool(ds.compression),
            ])
    return out


if __name__ == "__main__":
    import resource

    memory = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        result = probe(sys.argv[1], int(sys.argv[2]))
    except Exception as exc:  # noqa: BLE001 - any failure is "unreadable", told to the parent
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    json.dump(result, sys.stdout)

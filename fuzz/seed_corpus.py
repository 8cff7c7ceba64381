#!/usr/bin/env python3
"""Regenerates the committed seed corpora from the recorded client frames in the repository.

request_frame/: every recorded request frame, as is.
record_batch/:  every record batch found inside the Produce (api key 0) frames. A batch is
                recognised by magic 2 and a matching CRC32C, which no accidental byte run
                satisfies, so no Produce parser is needed here.

Usage: fuzz/seed_corpus.py [path/to/kafka-requests]  (default: engine/tests/corpus/kafka-requests)
"""
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parent / "engine" / "tests" / "corpus" / "kafka-requests"


def crc32c_table():
    table = []
    for index in range(256):
        crc = index
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


TABLE = crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def batches_in(frame):
    position = 0
    while position + 61 <= len(frame):
        length = int.from_bytes(frame[position + 8:position + 12], "big", signed=True)
        end = position + 12 + length
        if frame[position + 16] == 2 and 49 <= length and end <= len(frame):
            stored = int.from_bytes(frame[position + 17:position + 21], "big")
            if crc32c(frame[position + 21:end]) == stored:
                yield frame[position:end]
                position = end
                continue
        position += 1


def main():
    source = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SOURCE
    frames = sorted(source.rglob("*.bin"))
    if not frames:
        sys.exit(f"no frames under {source}")
    targets = {name: HERE / "corpus" / name for name in ("request_frame", "record_batch")}
    for directory in targets.values():
        # Added to, never wiped: the directories also hold seeds that fuzzing found and
        # committed (libFuzzer's hash-named files), which a regeneration must keep.
        directory.mkdir(parents=True, exist_ok=True)
    batch_count = 0
    all_batches = []
    for path in frames:
        name = f"{path.parent.name}-{path.stem}"
        frame = path.read_bytes()
        (targets["request_frame"] / f"{name}.bin").write_bytes(frame)
        if int.from_bytes(frame[4:6], "big") != 0:
            continue
        for index, batch in enumerate(batches_in(frame)):
            (targets["record_batch"] / f"{name}-batch{index}.bin").write_bytes(batch)
            all_batches.append(batch)
            batch_count += 1
    # One payload of several batches, as a produce partition may carry, to seed splitting.
    (targets["record_batch"] / "concatenated-batches.bin").write_bytes(b"".join(all_batches[:3]))
    print(f"{len(frames)} frames, {batch_count} record batches")


if __name__ == "__main__":
    main()

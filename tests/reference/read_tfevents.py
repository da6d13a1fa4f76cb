#!/usr/bin/python3
"""Reads TensorBoard event files, written from the format's specification alone (the C++ writer is not looked
at), so tests can check src/train/tensorboard.cpp against a second implementation.

    read_tfevents.py PATH [--wall-time] [--protobuf] [--purge]

PATH is an event file or a folder (every file whose name holds "tfevents", in name order). Prints one line
`tag step value` per scalar (value as Python's repr of the float32; `--wall-time` adds the event's wall time).
Exits 1 with a message naming the file and byte offset on any framing, CRC or protobuf error.

Stricter than TensorBoard on purpose: a truncated last record is an error (TensorBoard waits for more data),
and the first event must be the file_version event "brain.Event:<n>".

TFRecord framing: uint64 length (LE), uint32 masked CRC-32C of the 8 length bytes, data, uint32 masked
CRC-32C of the data; mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32).
tensorflow.Event: wall_time double = 1, step int64 = 2, file_version string = 3, summary Summary = 5,
session_log SessionLog = 7. Summary: repeated Value value = 1. Value: tag string = 1, simple_value float = 2.
SessionLog: status enum = 1 (START = 1).

--purge shows what TensorBoard shows (its default purge_orphaned_data): a SessionLog START event at step s
(a restarted run) drops every scalar read so far with step >= s.

--protobuf decodes every record a second time with the protobuf runtime (Debian's python3-protobuf; TensorFlow's
event_pb2 is not packaged in Debian 12, so the schema above is declared here as a descriptor) and fails unless
both decoders agree. Exits 2 when google.protobuf is not importable.
"""
import math
import os
import struct
import sys

# Stdlib has no CRC-32C (zlib.crc32 is the IEEE polynomial).
_POLY = 0x82F63B78  # Castagnoli, bit-reflected


def _make_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ _POLY if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _make_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# A wrong CRC table would make every check pass against a writer with the same mistake.
assert crc32c(b"123456789") == 0xE3069283
assert crc32c(bytes(32)) == 0x8A9136AA


class FormatError(Exception):
    pass


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError("varint runs past the end of its message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise FormatError("varint longer than 10 bytes")
    if result >= 1 << 64:
        raise FormatError("varint exceeds 64 bits")
    return result, pos


def fields(buf):
    """Yields (field number, wire type, value) of a message; value is int, or bytes for length-delimited and
    fixed fields."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise FormatError("field number 0")
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise FormatError(f"fixed64 field {number} runs past the end")
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise FormatError(f"length-delimited field {number} ({n} bytes) runs past the end")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise FormatError(f"fixed32 field {number} runs past the end")
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise FormatError(f"wire type {wire} (field {number}) is not used by Event")
        yield number, wire, value


def expect_wire(number, wire, want, what):
    if wire != want:
        raise FormatError(f"{what} (field {number}) has wire type {wire}, expected {want}")


def decode_event(data):
    """The Event as a dict: wall_time, step, file_version (or None), scalars [(tag, value)]."""
    event = {"wall_time": 0.0, "step": 0, "file_version": None, "scalars": [], "session_start": False}
    for number, wire, value in fields(data):
        if number == 1:
            expect_wire(number, wire, 1, "Event.wall_time")
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif number == 2:
            expect_wire(number, wire, 0, "Event.step")
            event["step"] = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 3:
            expect_wire(number, wire, 2, "Event.file_version")
            event["file_version"] = value.decode("utf-8")
        elif number == 7:
            expect_wire(number, wire, 2, "Event.session_log")
            for sn, sw, sv in fields(value):
                if sn == 1:
                    expect_wire(sn, sw, 0, "SessionLog.status")
                    event["session_start"] = sv == 1
        elif number == 5:
            expect_wire(number, wire, 2, "Event.summary")
            for vn, vw, vv in fields(value):
                if vn != 1:
                    continue
                expect_wire(vn, vw, 2, "Summary.value")
                tag, simple = None, None
                for fn, fw, fv in fields(vv):
                    if fn == 1:
                        expect_wire(fn, fw, 2, "Value.tag")
                        tag = fv.decode("utf-8")
                    elif fn == 2:
                        expect_wire(fn, fw, 5, "Value.simple_value")
                        simple = struct.unpack("<f", fv)[0]
                if tag is None:
                    raise FormatError("Summary.Value without a tag")
                if simple is not None:  # images, histograms, tensors: not scalars, not ours
                    event["scalars"].append((tag, simple))
    return event


def records(path):
    """Yields (offset, data) of every record, verifying both CRCs."""
    with open(path, "rb") as f:
        blob = f.read()
    pos = 0
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise FormatError(f"offset {pos}: truncated record header ({len(blob) - pos} of 12 bytes)")
        header = blob[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", blob[pos + 8:pos + 12])
        if masked(crc32c(header)) != length_crc:
            raise FormatError(f"offset {pos}: length CRC mismatch (stored {length_crc:#010x}, "
                              f"computed {masked(crc32c(header)):#010x})")
        end = pos + 12 + length + 4
        if end > len(blob):
            raise FormatError(f"offset {pos}: truncated record ({length} data bytes announced, "
                              f"{len(blob) - pos - 12} bytes left)")
        data = blob[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", blob[end - 4:end])
        if masked(crc32c(data)) != data_crc:
            raise FormatError(f"offset {pos}: data CRC mismatch (stored {data_crc:#010x}, "
                              f"computed {masked(crc32c(data)):#010x})")
        yield pos, data
        pos = end


def protobuf_decoder():
    """A decode_event built on google.protobuf, from a descriptor of the fields above."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="dense_tfevents_check.proto", package="tensorflow",
                                             syntax="proto3")
    value = fdp.message_type.add(name="Value")
    value.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    value.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL,
                    oneof_index=0)
    value.oneof_decl.add(name="value")
    summary = fdp.message_type.add(name="Summary")
    summary.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                      type_name=".tensorflow.Value")
    event = fdp.message_type.add(name="Event")
    event.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
    event.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    event.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, oneof_index=0)
    event.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".tensorflow.Summary", oneof_index=0)
    session_log = fdp.message_type.add(name="SessionLog")
    session_log.field.add(name="status", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    event.field.add(name="session_log", number=7, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".tensorflow.SessionLog", oneof_index=0)
    event.oneof_decl.add(name="what")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    desc = pool.FindMessageTypeByName("tensorflow.Event")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        Event = message_factory.GetMessageClass(desc)
    else:
        Event = message_factory.MessageFactory(pool).GetPrototype(desc)

    def decode(data):
        e = Event()
        e.ParseFromString(data)
        return {
            "wall_time": e.wall_time,
            "step": e.step,
            "file_version": e.file_version if e.WhichOneof("what") == "file_version" else None,
            "scalars": [(v.tag, v.simple_value) for v in e.summary.value if v.WhichOneof("value") == "simple_value"],
            "session_start": e.WhichOneof("what") == "session_log" and e.session_log.status == 1,
        }

    return decode


def same(a, b):
    def norm(x):
        return "nan" if isinstance(x, float) and math.isnan(x) else x

    return (norm(a["wall_time"]) == norm(b["wall_time"]) and a["step"] == b["step"]
            and a["file_version"] == b["file_version"] and a["session_start"] == b["session_start"]
            and [(t, norm(v)) for t, v in a["scalars"]] == [(t, norm(v)) for t, v in b["scalars"]])


def read_file(path, second_decoder, out, with_wall_time, purge):
    first = True
    for offset, data in records(path):
        try:
            event = decode_event(data)
        except FormatError as e:
            raise FormatError(f"offset {offset}: {e}") from None
        if second_decoder is not None:
            try:
                other = second_decoder(data)
            except Exception as e:  # the runtime's DecodeError, and whatever else it raises
                raise FormatError(f"offset {offset}: protobuf runtime rejects the record: {e}") from None
            if not same(event, other):
                raise FormatError(f"offset {offset}: decoders disagree: {event} vs protobuf {other}")
        if first:
            if event["file_version"] is None or not event["file_version"].startswith("brain.Event:"):
                raise FormatError(f"offset {offset}: the first event is not a file_version 'brain.Event:<n>' "
                                  f"event ({event})")
            first = False
        if purge and event["session_start"]:
            out[:] = [(step, line) for step, line in out if step < event["step"]]
        for tag, value in event["scalars"]:
            line = f"{tag} {event['step']} {value!r}"
            if with_wall_time:
                line += f" {event['wall_time']!r}"
            out.append((event["step"], line))
    if first:
        raise FormatError("empty file (no file_version event)")


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    unknown = flags - {"--wall-time", "--protobuf", "--purge"}
    if len(args) != 1 or unknown:
        print(__doc__, file=sys.stderr)
        return 1
    second = None
    if "--protobuf" in flags:
        try:
            second = protobuf_decoder()
        except ImportError as e:
            print(f"read_tfevents: --protobuf needs python3-protobuf: {e}", file=sys.stderr)
            return 2
    path = args[0]
    if os.path.isdir(path):
        files = sorted(os.path.join(path, n) for n in os.listdir(path) if "tfevents" in n)
        if not files:
            print(f"read_tfevents: no tfevents file in {path}", file=sys.stderr)
            return 1
    else:
        files = [path]
    out = []
    for f in files:
        try:
            read_file(f, second, out, "--wall-time" in flags, "--purge" in flags)
        except (FormatError, OSError, UnicodeDecodeError) as e:
            print(f"read_tfevents: {f}: {e}", file=sys.stderr)
            return 1
    # Tags are UTF-8 whatever the locale says.
    sys.stdout.reconfigure(encoding="utf-8")
    for _, line in out:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

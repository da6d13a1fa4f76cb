#pragma once
// TensorBoard event files, written without TensorFlow or protobuf: the file format is small and stable, and a
// dependency that large for a few scalars per step is not worth it.
//
// A file is a sequence of TFRecords: uint64 length (little endian), masked CRC-32C of those 8 bytes, the data,
// masked CRC-32C of the data. Each record holds one serialized tensorflow.Event; the first is the file_version
// event ("brain.Event:2"), then one event per scalar. tests/reference/read_tfevents.py reads them back
// independently.
//
// One thread writes a given writer. Records are buffered: TensorBoard sees them after flush() (the trainer
// flushes at each logging interval) or at destruction. A crash loses at most the unflushed tail, and a record
// cut short by one is ignored by TensorBoard's reader.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace dense::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78). `crc` continues an earlier result:
// crc32c(b, crc32c(a)) == crc32c(a + b).
uint32_t crc32c(std::string_view bytes, uint32_t crc = 0);
// TFRecord's mask, so that a CRC stored next to the data it covers is not itself a valid CRC of a prefix.
uint32_t masked_crc32c(std::string_view bytes);

class TensorBoardWriter {
 public:
  // Creates <dir>/events.out.tfevents.<unix seconds>.<hostname>.<pid> (and dir), starting with the file_version
  // event. Should that name exist already (a second writer in the same second), ".1", ".2", ... is appended:
  // TensorBoard reads every file whose name holds "tfevents". dense::Error when the folder or file cannot be
  // created.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();  // flushes; errors are printed to stderr, not thrown
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One Event{wall_time: now, step, summary{value{tag, simple_value: float(value)}}}. dense::Error naming the
  // file when the write fails.
  void add_scalar(const std::string& tag, double value, int64_t step);
  // Event{step, session_log{status: START}}: a run restarted from a checkpoint. TensorBoard then drops the
  // events of earlier files with step >= `step` (its purge_orphaned_data), so the steps an interrupted run
  // logged after its last checkpoint do not appear twice.
  void add_session_start(int64_t step);
  // fflush + fsync, so the events survive a crash of the process or the machine.
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(std::string_view data);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace dense::train

// Package crashtest proves postline's fsync discipline against power
// loss, not only against killed processes: a killed process loses
// nothing it wrote, since the kernel's page cache outlives it, but a
// power cut loses whatever no completed flush covered.
//
// A Trace records, in one order, every write-side operation that
// production code makes through durable.FS on its Volumes (one Volume
// per filesystem: the queue, the mail root, the MDA's state folder):
// create, write, truncate, rename, unlink, mkdir, the fsync of a file
// or of a folder, the flush of a whole filesystem (syncfs), and Marks,
// the workload's notes of what it acknowledged (a Store that returned,
// an LMTP 250 sent). The live operations run on real folders, so the
// code under test reads back what it wrote as usual; no flush reaches
// the disk, since the explorer never relies on one.
//
// Explore then builds, at every boundary between two recorded
// operations, the states a power cut there could leave on disk, under
// this model of Linux ext4 with data=ordered, conservative where the
// kernel promises nothing (after ALICE: Pillai et al., "All File Systems
// Are Not Created Equal", OSDI 2014):
//
//   - Whatever a completed flush covered is on disk: fsync of a file, its
//     content; fsync of a folder, the entries of that folder created,
//     removed or renamed before it; syncfs of a filesystem, every entry
//     and every file's content on it. A file fsync is not taken to make
//     its name durable, nor a folder fsync its files' content or its own
//     name in its parent: a folder whose entry did not survive takes
//     everything in it along.
//   - Directory operations no flush covered persist as an in-order prefix
//     (the journal), any prefix, chosen independently on each filesystem
//     and independently of file data: a rename can survive while the data
//     it names does not.
//   - A file's content no flush covered may be missing or cut at any
//     4096-byte block boundary past what was flushed.
//   - A flush that failed (EIO) covers nothing, and the content it was to
//     write may be lost for good, whatever later flushes report: Linux may
//     drop the dirty pages after a failed writeback and report the error
//     only once (PostgreSQL's fsyncgate, 2018).
//
// Writes are appends (durable.File is an io.Writer); a truncation is
// kept with the file's content. The model does not cover folder renames
// or hard links: postline makes neither.
//
// For small workloads every allowed state is built; past the limits, a
// seeded random sample, whose seed the caller prints. Each state is
// materialized into the Volumes' folders (the paths the daemons would
// see again after a reboot), and the caller runs the daemons' recovery
// and checks its rules.
//
// Faults can be planted (a folder fsync or a file fsync dropped, a
// flush recorded only after the next acknowledgement, a flush failing
// with EIO), so that tests can show the explorer catches each one: an
// explorer that cannot fail proves nothing.
//
// crashtest is for tests only; no daemon imports it.
package crashtest

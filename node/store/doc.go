// Package store keeps expert containers on disk as content-addressed blocks,
// with an index of the experts they make up, a byte quota and LRU eviction.
//
// # On disk
//
// Everything lives under one data directory:
//
//	blocks/<xy>/<cid>     one file per block, named by its CIDv1 (base32);
//	                      <xy> is the next-to-last two characters of the CID
//	                      (kubo flatfs's next-to-last/2 sharding: 1024 dirs)
//	experts/<cid>.json    one index entry (Meta as JSON) per expert root
//	experts/<cid>.json.corrupt  an entry that could not be read or rebuilt
//	store.lock            flock(2)ed while a process has the store open
//
// Every file is written to a ".tmp-*" name in its final directory, fsynced,
// renamed and its directory fsynced, so a crash never leaves a partial file
// under a real name; Open removes the temporary files a crash left behind.
// A directory the store creates is fsynced into its parent. The writes go
// through a small file layer (fsys.go) that the tests replace to record
// them and replay a crash between any two.
// Block files are immutable once renamed. Every block is checked against its
// CID when it is written and whenever it is read.
//
// # Experts
//
// An expert is a .cpeft container laid out as a kubo-compatible UnixFS file
// (package unixfs): its root CID names it. Add chunks and stores a container
// (the publish path); Complete indexes one whose blocks a fetch has already
// stored with PutBlock. Blocks that no index entry references (a fetch in
// progress, or one interrupted by a restart) stay until GC removes them.
//
// The quota counts the bytes of the distinct blocks of indexed experts.
// Indexing an expert that does not fit evicts unpinned experts that no
// reader holds open, least recently used first; an expert that would not
// fit even then is refused with ErrQuota and the store is left as it was.
package store

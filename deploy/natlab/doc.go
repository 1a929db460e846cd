// Package natlab tests expertd across NAT with real daemons: each case
// builds its own network namespaces (an "internet" bridge holding a public
// node R and two routers doing iptables NAT, each router with a private LAN
// holding one node, A or B), runs `expertd daemon` in them, has A publish
// a 10 MiB expert and B fetch it, and checks how it came (direct,
// hole-punched, relayed) or why it could not.
//
// It needs root, ip(8) and iptables(8): without them its tests skip,
// unless CI is set, when they fail. TestNATQuick (two cases) runs with go
// test ./...; TestNATLab runs every case and, with -args -out DIR, writes
// DIR/natlab.md, the table of docs/nat.md (scripts/bench.sh runs it).
// The lab's links carry what the CPUs push; -wan-rate (tc(8) tbf) gives
// the links to the internet a rate instead, as between far-apart sites.
// Nothing is linked to the host's own network namespace; every namespace
// and the iptables rules in them go when the test ends, even when it
// fails (and a later run removes those of a run that was killed).
package natlab

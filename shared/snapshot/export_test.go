package snapshot

// SizeHint exposes sizeHint to the tests of package snapshot_test.
func SizeHint(s *Snapshot) int { return s.sizeHint() }

package clusterversion

// Handle is what a gate needs to know: the cluster version this node has
// persisted and acts on. The server implements it.
type Handle interface {
	ActiveVersion() Version
}

// IsActive reports whether the feature introduced at k may be used: the
// active cluster version has reached k, and this binary knows k. The second
// condition makes a binary built as release R behave exactly as R whatever
// it is told: no gate above R is ever active in it.
//
// Following "gate what you send, accept what you receive", callers use
// IsActive to decide what they send or write; a receiver never refuses a
// message or row on the grounds that its own gate is still inactive.
func IsActive(h Handle, k Key) bool {
	bv, err := BinaryVersion()
	if err != nil {
		return false
	}
	v := k.Version()
	return !h.ActiveVersion().Less(v) && !bv.Less(v)
}

// Supports reports whether a binary of release bin can run a cluster whose
// active version is v: v lies between MinSupported(bin) and bin.
func Supports(bin, v Version) bool {
	return !v.Less(MinSupported(bin)) && !bin.Less(v)
}

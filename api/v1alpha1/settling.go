package v1alpha1

// Settling reports whether a controller is still acting on the object: an
// operation under way, or a delete. Its status may be written any moment,
// by a writer a front door's read cache does not follow, so readers that
// must see an operation's result once it ended read such objects fresh.
func (mc *ManagedCluster) Settling() bool {
	return running(mc.Spec.Operation, mc.Status.CompletedOperation) || mc.DeletionTimestamp != nil
}

// Settling: see ManagedCluster.Settling.
func (p *AgentPool) Settling() bool {
	return running(p.Spec.Operation, p.Status.CompletedOperation) || p.DeletionTimestamp != nil
}

// Settling: a group has an operation only while it is deleted.
func (g *ResourceGroup) Settling() bool {
	return g.Spec.Operation != nil || g.DeletionTimestamp != nil
}

func running(op *OperationRef, completed string) bool { return op != nil && op.ID != completed }

// Package stop owns a node's background work (CockroachDB's
// util/stop.Stopper, reduced to what kvnode uses): every long-lived
// goroutine of a node is a named task started by RunAsyncTask, whose
// context is cancelled when the node quiesces; Stop quiesces and waits
// for every task, and says which ones it is still waiting for. So a node's
// shutdown is one call, and a test can check that none of its goroutines
// survives it.
//
// Nothing loops on a stop channel of its own or runs on
// context.Background(): a periodic loop is Every on its task's context,
// another loop selects on its task's ctx.Done(), a
// bounded call takes its deadline from the stopper's context
// (WithTimeout), and a part that takes a channel instead of a context is
// handed ShouldQuiesce.
//
// Layering: a leaf of the standard library; it knows nothing of what the
// tasks do.
package stop

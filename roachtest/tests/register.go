package tests

import "github.com/kvnode/kvnode/roachtest/registry"

// Register adds every scenario to r. Add a new group of scenarios here.
func Register(r *registry.Registry) {
	registerBasic(r)
	registerMixed(r)
	registerUpgrade(r)
	registerUpgradeScenarios(r)
	registerLifecycle(r)
	registerGroup0(r)
	registerRecover(r)
	registerTxn(r)
	registerDowngrade(r)
	registerWholeLadder(r)
	registerOlderDowngrades(r)
	registerSecure(r)
}

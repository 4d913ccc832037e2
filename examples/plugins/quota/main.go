// Command quota is an example Gatehouse plugin: a shape hook that gives
// each request a priority tier, a rate-limit key and a cost from the tier
// the validate phase found (label "tier", e.g. from the authz example),
// with per-user overrides read from a quota file (the stand-in for a quota
// database). Users over quota are turned away with 429.
//
//	plugins:
//	  - name: quota
//	    path: /usr/lib/gatehouse/quota
//	    config:
//	      tiers:
//	        internal: {priority: critical}
//	        gold:     {priority: default}
//	        free:     {priority: bulk, cost: 2}
//	      anonymous: {priority: degraded}
//	      quota_file: /var/lib/gatehouse/quota.txt
package main

import "github.com/gatehouse/gatehouse/sdk/plugin"

func main() { plugin.Serve(&quota{}) }

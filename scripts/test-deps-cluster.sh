#!/usr/bin/env bash
# Install the cluster stack that tests/cluster/ runs, from Debian's packages:
#   corosync             the membership layer (knet transport), one per sandboxed node
#   pacemaker            pacemakerd and its daemons (the CRM), one per sandboxed node
#   pacemaker-cli-utils  crm_verify, crm_simulate, crm_mon, crm_resource, cibadmin
#   resource-agents      ocf-tester (the OCF agents' test suite) and ocf:heartbeat:IPaddr2
#   crmsh                `crm configure load`, which checks `rearm export pacemaker --format crm`
#   libxml2-utils        xmllint, with which ocf-tester checks the meta-data against ra-api-1.dtd
#
# Idempotent; without root it only reports. No system service starts: a policy-rc.d answering
# 101 ("action forbidden") is in place while apt-get runs, so invoke-rc.d/deb-systemd-invoke in
# the maintainer scripts start nothing. The postinsts of corosync and pacemaker do *enable*
# their units (symlinks under /etc/systemd/system/multi-user.target.wants, as every Debian
# service package does; here PID 1 is not systemd, so nothing reads them); this script checks
# afterwards that no corosync or pacemaker process is running, and stops by pid any that the
# install started regardless. The tests run corosync and pacemakerd only inside their own
# namespaces, with their own configuration (docs/pacemaker.md, "How the tests run a cluster").
set -euo pipefail

PACKAGES=(corosync pacemaker pacemaker-cli-utils resource-agents libxml2-utils crmsh)
DAEMONS='^(corosync|pacemakerd|pacemaker-.*)$'

. "$(dirname "$0")/lib-deps.sh"

deps_missing test-deps-cluster "${PACKAGES[@]}"
[ ${#missing[@]} -gt 0 ] || exit 0
deps_can_install test-deps-cluster || exit 0
deps_update_lists test-deps-cluster

before=$(deps_daemon_pids "$DAEMONS")
deps_forbid_services test-deps-cluster
deps_install test-deps-cluster "${missing[@]}"
deps_stop_started test-deps-cluster "$before" "$DAEMONS" || exit 1
echo "test-deps-cluster: no corosync or pacemaker process runs after the install"

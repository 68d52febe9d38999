"""The versions this server reports (Status.version, /version).

We implement the etcd 3.5 API, including the watch progress fixes that kube-apiserver gates
on (etcd >= 3.5.13, see ETCD_FEATURES 1.4), so we report that version.
"""

SERVER_VERSION = "3.5.13"
CLUSTER_VERSION = "3.5.0"

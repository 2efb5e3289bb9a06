"""A real local environment for the integration tests and `campaign-autoscaler demo`.

`controlplane.ControlPlane` runs etcd + kube-apiserver + kube-controller-manager on loopback,
`podsim.PodReadinessSimulator` makes Pods Ready without a kubelet, and `prometheus.PrometheusServer`
runs a real Prometheus scraping a `prometheus.SyntheticExporter`.
"""

"""`campaign-autoscaler demo`: the 9.9 sale, compressed to about two minutes.

By default on a throw-away local cluster; with `--kubeconfig`, in a throw-away namespace of an existing
one. Everything is real except the pace of time and the traffic: a local kube-apiserver + etcd +
kube-controller-manager (Pods made Ready by the readiness simulator), or the given cluster (Pods run for
real); a real Prometheus scraping a synthetic exporter that replays the synthetic 9.9 traffic curve at 60x
speed (1 s of the demo = 1 min of the sale); and the operator itself, `python -m campaign_autoscaler run`,
in its own process. The demo only creates the Deployments and the CampaignEvent, then watches: it never
scales anything.

Rooms: `scenario` (the compressed sale and its plan, pure), `observe` (samples of the cluster and what they
say), `dashboard` (the live view and the summary), `plot` (the PNG), `environment` (what is started and
created), `run` (the orchestration).
"""

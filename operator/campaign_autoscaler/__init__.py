"""campaign-autoscaler: scale Deployments ahead of known sales campaigns and restore them afterwards."""

API_GROUP = "autoscaling.campaigns.dev"
API_VERSION = "v1alpha1"
KIND = "CampaignEvent"
PLURAL = "campaignevents"

__version__ = "0.1.0"

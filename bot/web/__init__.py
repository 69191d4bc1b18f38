"""What the service serves to browsers: the local web chat's page and the dashboard (看板)."""

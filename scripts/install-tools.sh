#!/usr/bin/env bash
# Placeholder until the deployment tooling lands: nothing to install yet.
exit 0

"""Stage 7, Export: Compose, Kubernetes and KServe manifests for a served image, checked before
they are written.

    options.py      ExportOptions, validated field by field (ExportOptionsError names the field)
    facts.py        ServedModel: name, version, sha256, API key variable and shutdown timing,
                    read from the image's labels and serving.json, else from the model file
    compose.py      compose.yaml: the service hardened as the studio runs it, a canary beside it
    kubernetes.py   Deployment, Service, ServiceAccount, HPA, PDB, NetworkPolicy, Ingress,
                    ServiceMonitor and a canary Deployment, as data
    kserve.py       the InferenceService: Slipway's image as a custom predictor, protocol v2
    kustomize.py    the base and the staging and production overlays
    documents.py    build_export: the output folder as documents, written as YAML by PyYAML
    findings.py     Finding, ToolRun and Report: what the checks say
    rules.py        kube-score's and kube-linter's default checks, and the Compose hardening
    tools.py        kubectl kustomize, docker-compose config and checkov, found and run
    checkov.py      Checkov once over a folder, its JSON read as findings
    validate.py     check_folder: every check on a folder of manifests (`slipway export --check`)
    write.py        check_export, then write_export: whole files, or none when a check failed
"""

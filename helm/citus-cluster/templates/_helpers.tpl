{{/*
Names, labels and the list of Citus groups. Every template takes its names and labels from
here so that a resource name or a selector is spelled in exactly one place.
*/}}

{{- define "citus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. `cluster-name` is the interface of the original chart
(kubectl ... -l cluster-name=<clusterName>) and the label Patroni selects its pods by. */}}
{{- define "citus.labels" -}}
helm.sh/chart: {{ include "citus.chart" . }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
cluster-name: {{ .Values.clusterName }}
{{- end -}}

{{/* Stable labels: selectors and volumeClaimTemplates (both immutable) use only these. */}}
{{- define "citus.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
cluster-name: {{ .Values.clusterName }}
{{- end -}}

{{/* Per-group labels; argument: dict "root" $ "group" <group from citus.groups>.
`citus-group` is also Patroni's Citus group label (kubernetes.group_label default). */}}
{{- define "citus.groupSelectorLabels" -}}
{{ include "citus.selectorLabels" .root }}
citus-group: {{ .group.id | quote }}
{{- end -}}

{{/* Selects every database pod of the release (any group), and no other pod: the extensions
Job and the test pod carry the release's labels but no citus-group. A LabelSelector. */}}
{{- define "citus.memberSelector" -}}
matchLabels:
  {{- include "citus.selectorLabels" . | nindent 2 }}
matchExpressions:
  - key: citus-group
    operator: Exists
{{- end -}}

{{- define "citus.groupLabels" -}}
{{ include "citus.labels" .root }}
app.kubernetes.io/component: {{ .group.type }}
citus-group: {{ .group.id | quote }}
citus-type: {{ .group.type }}
{{- end -}}

{{/* The Citus groups as JSON {"groups": [...]}: the coordinator (group 0) when enabled, then
the workers in the order given. Each group: id (string), type, replicas and the effective
per-group settings (group override, else the top-level value). Fails on a duplicate group:
JSON schema cannot express uniqueness of one property across array items. */}}
{{- define "citus.groups" -}}
{{- $v := .Values -}}
{{- $entries := list -}}
{{- if $v.coordinator.enabled -}}
{{- $entries = append $entries (dict "id" "0" "type" "coordinator" "spec" $v.coordinator) -}}
{{- end -}}
{{- $seen := dict "0" true -}}
{{- range $i, $w := $v.workers -}}
{{- $id := toString $w.citusGroup -}}
{{- if hasKey $seen $id -}}
{{- fail (printf "workers[%d].citusGroup: group %s is used twice; every worker group needs its own citusGroup (> 0, unique)" $i $id) -}}
{{- end -}}
{{- $_ := set $seen $id true -}}
{{- $entries = append $entries (dict "id" $id "type" (default "worker" $w.citusType) "spec" $w) -}}
{{- end -}}
{{- $groups := list -}}
{{- range $e := $entries -}}
{{- $s := $e.spec -}}
{{- $groups = append $groups (dict "id" $e.id "type" $e.type "replicas" (int $s.replicas)
      "resources" (default $v.resources $s.resources)
      "storage" (merge (dict) (default (dict) $s.storage) (pick $v.storage.persistentVolume "size" "storageClass"))
      "nodeSelector" (default $v.nodeSelector $s.nodeSelector)
      "tolerations" (default $v.tolerations $s.tolerations)
      "affinity" (default $v.affinity $s.affinity)) -}}
{{- end -}}
{{- toJson (dict "groups" $groups) -}}
{{- end -}}

{{- define "citus.groupName" -}}
{{ .root.Values.clusterName }}-{{ .group.id }}
{{- end -}}

{{/* Headless service giving the members of a group DNS names (StatefulSet serviceName). */}}
{{- define "citus.headlessName" -}}
{{ include "citus.groupName" . }}-hl
{{- end -}}

{{- define "citus.podDnsDomain" -}}
{{ include "citus.headlessName" . }}.{{ .root.Release.Namespace }}.svc.{{ .root.Values.clusterDomain }}
{{- end -}}

{{- define "citus.serviceAccountName" -}}
{{- if .Values.serviceAccount.name -}}
{{ .Values.serviceAccount.name }}
{{- else -}}
{{ .Values.clusterName }}
{{- end -}}
{{- end -}}

{{/* Names of the two secrets: an explicit value wins (the original chart's `citusdemo` and
`citusdemo-ssl-certs` keep working), else derived from clusterName so that two releases in
one namespace never share a secret. */}}
{{- define "citus.secretName" -}}
{{ .Values.secret.name | default .Values.clusterName }}
{{- end -}}

{{- define "citus.sslSecretName" -}}
{{ .Values.ssl.secretName | default (printf "%s-ssl-certs" .Values.clusterName) }}
{{- end -}}

{{/* "true" when the chart makes the TLS certificates itself: TLS on, no ssl.secretName of the
user's and no cert-manager. */}}
{{- define "citus.sslGenerated" -}}
{{- if and .Values.ssl.enabled (not .Values.ssl.secretName) (not .Values.ssl.certManager.enabled) -}}
true
{{- end -}}
{{- end -}}

{{/* Secret holding the generated CA (ca.crt, ca.key); never mounted into any pod. */}}
{{- define "citus.sslCaSecretName" -}}
{{ .Values.clusterName }}-ssl-ca
{{- end -}}

{{/* Every name and address the members' certificate must cover, as JSON {"dns": [...],
"ips": [...]}: each group's pods by the wildcard of its headless service (verify-full between
members), every service in all its spellings, localhost, and ssl.extraDnsNames /
ssl.extraIpAddresses. The generated certificate and cert-manager's use this one list. */}}
{{- define "citus.sslNames" -}}
{{- $root := . -}}
{{- $ns := .Release.Namespace -}}
{{- $domain := .Values.clusterDomain -}}
{{- $services := list -}}
{{- $podDomains := list -}}
{{- range $group := (fromJson (include "citus.groups" .)).groups -}}
{{- $ctx := dict "root" $root "group" $group -}}
{{- $services = concat $services (list (include "citus.groupName" $ctx) (include "citus.headlessName" $ctx)) -}}
{{- $podDomains = append $podDomains (include "citus.headlessName" $ctx) -}}
{{- end -}}
{{- if .Values.workers -}}
{{- $services = append $services (printf "%s-workers" .Values.clusterName) -}}
{{- end -}}
{{- $dns := list -}}
{{- range $services -}}
{{- $dns = concat $dns (list . (printf "%s.%s" . $ns) (printf "%s.%s.svc" . $ns) (printf "%s.%s.svc.%s" . $ns $domain)) -}}
{{- end -}}
{{- range $podDomains -}}
{{- $dns = concat $dns (list (printf "*.%s.%s" . $ns) (printf "*.%s.%s.svc" . $ns) (printf "*.%s.%s.svc.%s" . $ns $domain)) -}}
{{- end -}}
{{- $dns = append $dns "localhost" -}}
{{- $dns = concat $dns .Values.ssl.extraDnsNames | uniq -}}
{{- $ips := concat (list "127.0.0.1" "::1") .Values.ssl.extraIpAddresses | uniq -}}
{{- toJson (dict "dns" $dns "ips" $ips) -}}
{{- end -}}

{{/* The image reference: repository@digest when a digest is given (the tag is then only
documentation), else repository:tag with the chart's appVersion as the default tag. */}}
{{- define "citus.image" -}}
{{- with .Values.image.digest -}}
{{ $.Values.image.repository }}@{{ . }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "citus.extensionsConfigMap" -}}
{{ .Values.clusterName }}-extensions
{{- end -}}

{{/* The extension list as citus-init's EXTENSIONS_FILE text: one entry a line. Empty when
additionalExtensions.enabled is false, so that enabling it later changes only the file,
which citus-init picks up without a restart. */}}
{{- define "citus.extensionsFile" -}}
# Managed by Helm (additionalExtensions.extensions): one extension a line, name[:schema]
{{- if .Values.additionalExtensions.enabled }}
{{- range .Values.additionalExtensions.extensions }}
{{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Paths of the pod contract (docs/citus-init.md). */}}
{{- define "citus.secretsDir" -}}/etc/patroni/secrets{{- end -}}
{{- define "citus.sslCertDir" -}}/etc/ssl/certs/postgresql{{- end -}}
{{- define "citus.extensionsDir" -}}/etc/citus-init/extensions{{- end -}}
{{- define "citus.runDir" -}}/run/citus-init{{- end -}}

{{- define "citus.clientCertDir" -}}/etc/ssl/certs/postgresql-client{{- end -}}

{{- define "citus.clientSecretName" -}}
{{ .Values.ssl.clientSecretName | default (printf "%s-client-tls" .Values.clusterName) }}
{{- end -}}

{{/* Client-side TLS settings of every container that runs psql or libpq. Argument: dict
"root" $ and "clientOnly": a database pod presents its server certificate as client
certificate (ssl.clientCert); the extensions Job and the test pod present the client
certificate of ssl.clientSecretName and never see the server key. */}}
{{- define "citus.clientSslEnv" -}}
{{- $v := .root.Values -}}
{{- if $v.ssl.enabled }}
- name: PGSSLMODE
  value: {{ $v.ssl.mode | quote }}
- name: PGSSLROOTCERT
  value: {{ include "citus.sslCertDir" .root }}/ca.crt
{{- if and $v.ssl.clientCert .clientOnly }}
- name: PGSSLCERT
  value: {{ include "citus.clientCertDir" .root }}/tls.crt
- name: PGSSLKEY
  value: {{ include "citus.clientCertDir" .root }}/tls.key
{{- else if $v.ssl.clientCert }}
- name: PGSSLCERT
  value: {{ include "citus.sslCertDir" .root }}/server.crt
- name: PGSSLKEY
  value: {{ include "citus.sslCertDir" .root }}/server.key
{{- end }}
{{- else }}
- name: PGSSLMODE
  value: prefer
{{- end }}
{{- end -}}

{{/* Environment shared by the database pods and the extensions Job: secrets, TLS, database.
Argument: dict "root" $ and "clientOnly" (the Job). */}}
{{- define "citus.commonEnv" -}}
{{- $v := .root.Values -}}
- name: CLUSTER_NAME
  value: {{ $v.clusterName | quote }}
- name: CITUS_DATABASE
  value: {{ $v.citus.database | quote }}
- name: SECRETS_DIR
  value: {{ include "citus.secretsDir" .root }}
- name: SUPERUSER_USERNAME
  value: {{ $v.patroni.superuser.username | quote }}
- name: SUPERUSER_PASSWORD_KEY
  value: {{ $v.secret.keys.superuserPassword | quote }}
- name: SSL_ENABLED
  value: {{ $v.ssl.enabled | quote }}
- name: SSL_MODE
  value: {{ $v.ssl.mode | quote }}
{{- if .clientOnly }}
# The Job presents the client certificate through libpq (PGSSLCERT/PGSSLKEY below);
# SSL_CLIENT_CERT=true would make citus-init look for the server pair, which it never gets.
- name: SSL_CLIENT_CERT
  value: "false"
{{- else }}
- name: SSL_CLIENT_CERT
  value: {{ $v.ssl.clientCert | quote }}
{{- end }}
{{- if $v.ssl.enabled }}
- name: SSL_CERT_DIR
  value: {{ include "citus.sslCertDir" .root }}
{{- end }}
- name: EXTENSIONS_MAX_ATTEMPTS
  value: {{ $v.additionalExtensions.maxAttempts | quote }}
- name: EXTENSIONS_RETRY_DELAY
  value: {{ $v.additionalExtensions.retryDelaySeconds | quote }}
{{- include "citus.clientSslEnv" . }}
{{- end -}}

{{/* Secret volumes (0440: readable by root and by the fsGroup, never by others). The
password volume projects only the configured keys, so a missing key stops the pod with a
clear event instead of starting a member without a password. Argument: dict "root" $ and
"clientOnly" true for the Job and the test pod: they get the superuser password, the CA and
(with ssl.clientCert) the client certificate, never the server key or the other passwords. */}}
{{- define "citus.secretVolumes" -}}
{{- $v := .root.Values -}}
- name: patroni-secrets
  secret:
    secretName: {{ include "citus.secretName" .root }}
    defaultMode: 0440
    items:
      - key: {{ $v.secret.keys.superuserPassword }}
        path: {{ $v.secret.keys.superuserPassword }}
      {{- if not .clientOnly }}
      - key: {{ $v.secret.keys.replicationPassword }}
        path: {{ $v.secret.keys.replicationPassword }}
      {{- if $v.patroni.restapi.authentication.enabled }}
      - key: {{ $v.secret.keys.restapiPassword }}
        path: {{ $v.secret.keys.restapiPassword }}
      {{- end }}
      {{- if $v.app.username }}
      - key: {{ $v.secret.keys.appPassword }}
        path: {{ $v.secret.keys.appPassword }}
      {{- end }}
      {{- end }}
{{- if $v.ssl.enabled }}
- name: ssl-certs
  secret:
    secretName: {{ include "citus.sslSecretName" .root }}
    defaultMode: 0440
    {{- if .clientOnly }}
    items:
      - key: ca.crt
        path: ca.crt
    {{- else if $v.ssl.certManager.enabled }}
    # cert-manager names the files tls.crt/tls.key; citus-init reads server.crt/server.key.
    items:
      - key: ca.crt
        path: ca.crt
      - key: tls.crt
        path: server.crt
      - key: tls.key
        path: server.key
    {{- end }}
{{- if and .clientOnly $v.ssl.clientCert }}
- name: client-cert
  secret:
    secretName: {{ include "citus.clientSecretName" .root }}
    defaultMode: 0440
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end -}}

{{/* Mounts of citus.secretVolumes; same argument. */}}
{{- define "citus.secretVolumeMounts" -}}
- name: patroni-secrets
  mountPath: {{ include "citus.secretsDir" .root }}
  readOnly: true
{{- if .root.Values.ssl.enabled }}
- name: ssl-certs
  mountPath: {{ include "citus.sslCertDir" .root }}
  readOnly: true
{{- if and .clientOnly .root.Values.ssl.clientCert }}
- name: client-cert
  mountPath: {{ include "citus.clientCertDir" .root }}
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod securityContext. fsGroup with OnRootMismatch: Kubernetes must not reset the data
directory's 0700 on every start (PostgreSQL refuses to start otherwise). */}}
{{- define "citus.podSecurityContext" -}}
{{- $s := .Values.securityContext -}}
{{- if $s.runAsNonRoot }}
runAsNonRoot: true
runAsUser: {{ $s.runAsUser }}
runAsGroup: {{ $s.runAsGroup }}
{{- end }}
fsGroup: {{ $s.fsGroup }}
fsGroupChangePolicy: {{ $s.fsGroupChangePolicy }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Security context of containers that never need root (extensions Job, helm test). */}}
{{- define "citus.restrictedContainerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Backups (docs/backups.md, README "Backups and restore"). Names of what the chart makes
or uses, and the mount points of the pod contract. */}}
{{- define "citus.backupSecretDir" -}}/etc/citus-init/backup{{- end -}}
{{- define "citus.restoreSecretDir" -}}/etc/citus-init/restore{{- end -}}
{{- define "citus.backupCaDir" -}}/etc/citus-init/backup-ca{{- end -}}

{{/* The secret holding the repository's passphrase (cipher-pass). */}}
{{- define "citus.backupCipherSecretName" -}}
{{ .Values.backup.encryption.existingSecret | default (printf "%s-backup" .Values.clusterName) }}
{{- end -}}

{{/* "true" when the chart generates the passphrase (and keeps it: lookup, resource-policy). */}}
{{- define "citus.backupCipherGenerated" -}}
{{- $b := .Values.backup -}}
{{- if and $b.enabled $b.encryption.enabled (not $b.encryption.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{- define "citus.backupS3SecretName" -}}
{{ .Values.backup.s3.existingSecret | default (printf "%s-backup-s3" .Values.clusterName) }}
{{- end -}}

{{- define "citus.backupClaimName" -}}
{{ .Values.backup.posix.existingClaim | default (printf "%s-backup-repo" .Values.clusterName) }}
{{- end -}}

{{- define "citus.restoreSecretName" -}}
{{ .Values.restore.existingSecret | default (printf "%s-backup" .Values.restore.fromCluster) }}
{{- end -}}

{{/* Labels of what outlives the release (resource-policy keep): the backups' passphrase and the
posix repository. No cluster-name: the cleanup commands after an uninstall (kubectl delete
pvc/secret -l cluster-name=<c>) must not take the backups with them. */}}
{{- define "citus.backupKeptLabels" -}}
{{ omit (include "citus.labels" . | fromYaml) "cluster-name" | toYaml | trim }}
app.kubernetes.io/component: backup
citus-backup-of: {{ .Values.clusterName }}
{{- end -}}

{{/* The port the members connect to on the S3 endpoint: the endpoint's own, else https'. */}}
{{- define "citus.backupS3Port" -}}
{{- $port := regexFind ":[0-9]+$" .Values.backup.s3.endpoint | trimPrefix ":" -}}
{{ $port | default "443" }}
{{- end -}}

{{/* Environment of the database container for backups and restore: BACKUP_* and RESTORE_*
of docs/backups.md. Nothing while backup.enabled is false (citus-init's BACKUP_REPO none). The
secrets are files (citus.backupVolumes), never variables; the secret directories are named
only when there is a file to read (posix without encryption has none). */}}
{{- define "citus.backupEnv" -}}
{{- $b := .Values.backup -}}
{{- $r := .Values.restore -}}
{{- if $b.enabled }}
- name: BACKUP_REPO
  value: {{ $b.repo.type | quote }}
- name: BACKUP_REPO_PATH
  value: {{ $b.repo.path | quote }}
{{- if eq $b.repo.type "s3" }}
- name: BACKUP_S3_ENDPOINT
  value: {{ $b.s3.endpoint | quote }}
- name: BACKUP_S3_BUCKET
  value: {{ $b.s3.bucket | quote }}
- name: BACKUP_S3_REGION
  value: {{ $b.s3.region | quote }}
- name: BACKUP_S3_URI_STYLE
  value: {{ $b.s3.uriStyle | quote }}
- name: BACKUP_S3_VERIFY_TLS
  value: {{ $b.s3.verifyTLS | quote }}
{{- if or $b.s3.caSecret.name $b.s3.caConfigMap.name }}
- name: BACKUP_S3_CA_FILE
  value: {{ include "citus.backupCaDir" . }}/ca.crt
{{- end }}
{{- end }}
{{- if or (eq $b.repo.type "s3") $b.encryption.enabled }}
- name: BACKUP_SECRET_DIR
  value: {{ include "citus.backupSecretDir" . }}
{{- end }}
- name: BACKUP_ENCRYPTION
  value: {{ $b.encryption.enabled | quote }}
- name: BACKUP_FULL_SCHEDULE
  value: {{ $b.schedule.full | quote }}
- name: BACKUP_DIFF_SCHEDULE
  value: {{ $b.schedule.diff | quote }}
- name: BACKUP_RETENTION_FULL
  value: {{ $b.retention.full | quote }}
- name: BACKUP_PROCESS_MAX
  value: {{ $b.processMax | quote }}
- name: BACKUP_COMPRESS_TYPE
  value: {{ $b.compressType | quote }}
- name: BACKUP_ARCHIVE_TIMEOUT
  value: {{ $b.archiveTimeout | quote }}
- name: RESTORE_POINT_INTERVAL
  value: {{ $b.restorePointInterval | quote }}
{{- if $r.fromCluster }}
- name: RESTORE_FROM_CLUSTER
  value: {{ $r.fromCluster | quote }}
- name: RESTORE_TARGET
  value: {{ $r.target | quote }}
{{- if $r.repoPath }}
- name: RESTORE_REPO_PATH
  value: {{ $r.repoPath | quote }}
{{- end }}
{{- if or (eq $b.repo.type "s3") $b.encryption.enabled }}
- name: RESTORE_SECRET_DIR
  value: {{ include "citus.restoreSecretDir" . }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes for backups: the repository's secrets (s3-key, s3-key-secret, cipher-pass) as one
projected directory, the source's likewise for a restore, the S3 CA, the posix repository.
Secret files 0440 like the passwords (root and the fsGroup). */}}
{{- define "citus.backupVolumes" -}}
{{- $b := .Values.backup -}}
{{- $r := .Values.restore -}}
{{- if $b.enabled }}
{{- $s3 := eq $b.repo.type "s3" }}
{{- if or $s3 $b.encryption.enabled }}
- name: backup-secrets
  projected:
    defaultMode: 0440
    sources:
      {{- if $s3 }}
      - secret:
          name: {{ include "citus.backupS3SecretName" . }}
          items:
            - key: s3-key
              path: s3-key
            - key: s3-key-secret
              path: s3-key-secret
      {{- end }}
      {{- if $b.encryption.enabled }}
      - secret:
          name: {{ include "citus.backupCipherSecretName" . }}
          items:
            - key: cipher-pass
              path: cipher-pass
      {{- end }}
{{- end }}
{{- if and $r.fromCluster (or $s3 $b.encryption.enabled) }}
- name: restore-secrets
  projected:
    defaultMode: 0440
    sources:
      {{- if $s3 }}
      - secret:
          name: {{ $r.s3ExistingSecret | default (include "citus.backupS3SecretName" .) }}
          items:
            - key: s3-key
              path: s3-key
            - key: s3-key-secret
              path: s3-key-secret
      {{- end }}
      {{- if $b.encryption.enabled }}
      - secret:
          name: {{ include "citus.restoreSecretName" . }}
          items:
            - key: cipher-pass
              path: cipher-pass
      {{- end }}
{{- end }}
{{- if $s3 }}
{{- if $b.s3.caSecret.name }}
- name: backup-s3-ca
  secret:
    secretName: {{ $b.s3.caSecret.name }}
    defaultMode: 0444
    items:
      - key: {{ $b.s3.caSecret.key }}
        path: ca.crt
{{- else if $b.s3.caConfigMap.name }}
- name: backup-s3-ca
  configMap:
    name: {{ $b.s3.caConfigMap.name }}
    defaultMode: 0444
    items:
      - key: {{ $b.s3.caConfigMap.key }}
        path: ca.crt
{{- end }}
{{- else }}
- name: backup-repo
  persistentVolumeClaim:
    claimName: {{ include "citus.backupClaimName" . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Mounts of citus.backupVolumes. */}}
{{- define "citus.backupVolumeMounts" -}}
{{- $b := .Values.backup -}}
{{- $r := .Values.restore -}}
{{- if $b.enabled }}
{{- $s3 := eq $b.repo.type "s3" }}
{{- if or $s3 $b.encryption.enabled }}
- name: backup-secrets
  mountPath: {{ include "citus.backupSecretDir" . }}
  readOnly: true
{{- end }}
{{- if and $r.fromCluster (or $s3 $b.encryption.enabled) }}
- name: restore-secrets
  mountPath: {{ include "citus.restoreSecretDir" . }}
  readOnly: true
{{- end }}
{{- if $s3 }}
{{- if or $b.s3.caSecret.name $b.s3.caConfigMap.name }}
- name: backup-s3-ca
  mountPath: {{ include "citus.backupCaDir" . }}
  readOnly: true
{{- end }}
{{- else }}
- name: backup-repo
  mountPath: {{ $b.repo.path }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Backup and restore values that need each other (the schema checks each on its own). */}}
{{- define "citus.validateBackup" -}}
{{- $b := .Values.backup -}}
{{- $r := .Values.restore -}}
{{- if $b.enabled -}}
{{- if eq $b.repo.type "s3" -}}
{{- if not $b.s3.endpoint -}}
{{- fail "backup.s3.endpoint is empty while backup.enabled is true with backup.repo.type=s3: give the object store's host or host:port (no scheme), e.g. s3.eu-central-1.amazonaws.com" -}}
{{- end -}}
{{- if not $b.s3.bucket -}}
{{- fail "backup.s3.bucket is empty while backup.enabled is true with backup.repo.type=s3: name the (existing) bucket the repository goes into" -}}
{{- end -}}
{{- if and (not $b.s3.existingSecret) (or (not $b.s3.accessKey) (not $b.s3.secretKey)) -}}
{{- fail "backup.s3.accessKey and backup.s3.secretKey are needed while backup.s3.existingSecret is empty: give the object store's credentials as backup.s3.existingSecret (a secret with the keys s3-key and s3-key-secret) or as these two values" -}}
{{- end -}}
{{- if and $b.s3.caSecret.name $b.s3.caConfigMap.name -}}
{{- fail "backup.s3.caSecret.name and backup.s3.caConfigMap.name are both set: give the S3 endpoint's CA in one of them" -}}
{{- end -}}
{{- end -}}
{{- if and (eq $b.repo.type "posix") $r.repoPath (ne $r.repoPath $b.repo.path) (not (hasPrefix (printf "%s/" (trimSuffix "/" $b.repo.path)) $r.repoPath)) -}}
{{- fail (printf "restore.repoPath (%s) is not on the repository volume: with backup.repo.type=posix the volume is mounted at backup.repo.path (%s) and restore.repoPath must lie below it" $r.repoPath $b.repo.path) -}}
{{- end -}}
{{- end -}}
{{- if $r.fromCluster -}}
{{- if not $b.enabled -}}
{{- fail (printf "restore.fromCluster (%s) needs backup.enabled: the source's repository is the one backup.repo and backup.s3 describe (and the restored cluster archives into it)" $r.fromCluster) -}}
{{- end -}}
{{- if not $r.target -}}
{{- fail "restore.target is empty while restore.fromCluster is set: give a restore point name (kubectl exec <pod> -- citus-init restore-points lists them), a UTC time like 2026-12-02T03:15:00Z, or latest" -}}
{{- end -}}
{{- else if or $r.target $r.repoPath $r.existingSecret $r.s3ExistingSecret -}}
{{- fail "restore.target, restore.repoPath, restore.existingSecret and restore.s3ExistingSecret need restore.fromCluster (the cluster to restore from): set it too, or none of them" -}}
{{- end -}}
{{- end -}}

{{/* Checks JSON schema cannot express; each message names the value and what is expected. */}}
{{- define "citus.validate" -}}
{{- $v := .Values -}}
{{- $_ := include "citus.groups" . -}}
{{- include "citus.validateBackup" . -}}
{{- include "citus.validateMetrics" . -}}
{{- if lt (int $v.patroni.ttl) (add $v.patroni.loopWait (mul 2 $v.patroni.retryTimeout) | int) -}}
{{- fail (printf "patroni.ttl (%v) must be at least patroni.loopWait + 2 * patroni.retryTimeout (%v + 2 * %v)" $v.patroni.ttl $v.patroni.loopWait $v.patroni.retryTimeout) -}}
{{- end -}}
{{- if and $v.additionalExtensions.enabled (not $v.coordinator.enabled) -}}
{{- fail "additionalExtensions.enabled needs coordinator.enabled: extensions are created on the coordinator" -}}
{{- end -}}
{{- if and $v.additionalExtensions.enabled (not $v.additionalExtensions.extensions) -}}
{{- fail "additionalExtensions.extensions is empty while additionalExtensions.enabled is true: list at least one extension" -}}
{{- end -}}
{{- if and $v.ssl.enabled $v.ssl.certManager.enabled (not $v.ssl.certManager.issuerRef.name) -}}
{{- fail "ssl.certManager.issuerRef.name is empty: name the cert-manager Issuer or ClusterIssuer that signs ssl.secretName" -}}
{{- end -}}
{{- if and $v.ssl.certManager.enabled (not $v.ssl.enabled) -}}
{{- fail "ssl.certManager.enabled needs ssl.enabled: the certificate is only used with TLS on" -}}
{{- end -}}
{{- if eq $v.secret.keys.superuserPassword $v.secret.keys.replicationPassword -}}
{{- fail (printf "secret.keys.superuserPassword and secret.keys.replicationPassword are both %q: the two passwords need different keys" $v.secret.keys.superuserPassword) -}}
{{- end -}}
{{- range $name := list "superuserPassword" "replicationPassword" -}}
{{- if eq (get $v.secret.keys $name) $v.secret.keys.restapiPassword -}}
{{- fail (printf "secret.keys.%s and secret.keys.restapiPassword are both %q: each password needs its own key" $name $v.secret.keys.restapiPassword) -}}
{{- end -}}
{{- end -}}
{{- range $name := list "superuserPassword" "replicationPassword" "restapiPassword" -}}
{{- if eq (get $v.secret.keys $name) $v.secret.keys.appPassword -}}
{{- fail (printf "secret.keys.%s and secret.keys.appPassword are both %q: each password needs its own key" $name $v.secret.keys.appPassword) -}}
{{- end -}}
{{- end -}}
{{- if and $v.app.username (has $v.app.username (list $v.patroni.superuser.username $v.patroni.replication.username)) -}}
{{- fail (printf "app.username %q is also the superuser or the replication user: the application role must be a role of its own (or empty for none)" $v.app.username) -}}
{{- end -}}
{{- if ge (int $v.ssl.generated.renewBeforeDays) (int $v.ssl.generated.days) -}}
{{- fail (printf "ssl.generated.renewBeforeDays (%v) must be less than ssl.generated.days (%v): every upgrade would issue a new certificate" $v.ssl.generated.renewBeforeDays $v.ssl.generated.days) -}}
{{- end -}}
{{- end -}}

{{/* "true" when Patroni's REST API serves https: TLS is on and patroni.restapi.tls is not off. */}}
{{- define "citus.restapiTLS" -}}
{{- and .Values.ssl.enabled .Values.patroni.restapi.tls -}}
{{- end -}}

{{/* GitOps guard: on `helm upgrade` the chart finds what it generated earlier (passwords,
certificates) with `lookup`. Rendered without access to the cluster (`helm template
--is-upgrade`, `helm upgrade --dry-run` without `=server`, tools that render with `helm
template`) lookup returns nothing and every render would make new passwords and
certificates. The password secret (the chart's or the user's, secret.name) exists in every
working release, so finding nothing there on an upgrade means lookup sees nothing: fail
instead of replacing what the database and the members use. Only while the chart generates
something (secret.create, TLS without ssl.secretName and cert-manager, or the backups'
passphrase). */}}
{{- define "citus.requireLookup" -}}
{{- $generates := or .Values.secret.create (include "citus.sslGenerated" .) (include "citus.backupCipherGenerated" .) -}}
{{- if and .Release.IsUpgrade $generates -}}
{{- $name := include "citus.secretName" . -}}
{{- if not (lookup "v1" "Secret" .Release.Namespace $name) -}}
{{- fail (printf "helm upgrade found no secret %q in namespace %q. Either the chart is rendered without access to the cluster (helm template, helm upgrade --dry-run without =server, Argo CD and other tools that render with `helm template`): `lookup` then returns nothing, and the generated passwords and TLS certificates would be replaced by new ones on every render, locking the members out of their own data. Render with cluster access, or give the chart everything it would generate: secret.create=false with a pre-created secret %q (keys %s, %s, %s%s) and ssl.secretName naming a pre-created TLS secret (ca.crt, server.crt, server.key), see the chart README, section GitOps%s. Or the secret was deleted: create it again with the passwords the database uses." $name .Release.Namespace $name .Values.secret.keys.superuserPassword .Values.secret.keys.replicationPassword .Values.secret.keys.restapiPassword (ternary (printf ", %s" .Values.secret.keys.appPassword) "" (not (empty .Values.app.username))) (ternary (printf "; and backup.encryption.existingSecret naming a secret with the backups' passphrase (key cipher-pass: once backups exist, the one in %q)" (include "citus.backupCipherSecretName" .)) "" (not (empty (include "citus.backupCipherGenerated" .))))) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Metrics (docs/observability.md). The exporter runs as `nobody`, the OS user the pod's
pg_ident maps to the monitoring role (citus-init's MONITORING_OS_USER) over the socket. */}}
{{- define "citus.metricsQueriesConfigMap" -}}
{{ .Values.clusterName }}-metrics-queries
{{- end -}}
{{- define "citus.metricsQueriesDir" -}}/etc/postgres-exporter{{- end -}}
{{- define "citus.socketDir" -}}/var/run/postgresql{{- end -}}
{{- define "citus.monitoringRole" -}}citus_monitor{{- end -}}
{{- define "citus.monitoringOsUser" -}}nobody{{- end -}}
{{- define "citus.monitoringUid" -}}65534{{- end -}}

{{/* The metrics values that need each other (the schema checks each on its own). */}}
{{- define "citus.validateMetrics" -}}
{{- $m := .Values.metrics -}}
{{- $taken := dict "5432" "PostgreSQL" "8008" "Patroni's REST API" -}}
{{- range $name, $port := dict "metrics.exporter.port" $m.exporter.port "metrics.agentPort" $m.agentPort -}}
{{- with get $taken (toString $port) -}}
{{- fail (printf "%s (%v) is the port of %s: give the metrics endpoints ports of their own" $name $port .) -}}
{{- end -}}
{{- end -}}
{{- if eq (int $m.exporter.port) (int $m.agentPort) -}}
{{- fail (printf "metrics.exporter.port and metrics.agentPort are both %v: postgres_exporter and citus-init's agent need a port each" $m.agentPort) -}}
{{- end -}}
{{- if $m.podMonitor.enabled -}}
{{- $interval := include "citus.durationMs" $m.podMonitor.interval | int -}}
{{- $timeout := include "citus.durationMs" $m.podMonitor.scrapeTimeout | int -}}
{{- if or (le $interval 0) (le $timeout 0) (gt $timeout $interval) -}}
{{- fail (printf "metrics.podMonitor.scrapeTimeout (%s) must be more than 0 and at most metrics.podMonitor.interval (%s): Prometheus refuses a scrape whose timeout exceeds its interval" $m.podMonitor.scrapeTimeout $m.podMonitor.interval) -}}
{{- end -}}
{{- end -}}
{{- if and (not $m.enabled) (or $m.podMonitor.enabled $m.prometheusRule.enabled) -}}
{{- fail "metrics.podMonitor.enabled and metrics.prometheusRule.enabled need metrics.enabled: without it the pods have no metrics ports to scrape (and the alerts would see nothing)" -}}
{{- end -}}
{{- end -}}

{{/* Milliseconds of a Prometheus duration as the schema allows it (`30s`, `1m30s`, `500ms`). */}}
{{- define "citus.durationMs" -}}
{{- $total := 0 -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h)" . -1 -}}
{{- $total = add $total (mul (regexFind "^[0-9]+" . | atoi) (get $units (regexReplaceAll "^[0-9]+" . ""))) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* Worker groups an upgrade adds and removes, as JSON {"keep": [ids of the values],
"added": [...], "removed": [...]}: the values' groups against the release's worker
StatefulSets that exist (lookup). Empty lists unless this is an upgrade of a release with a
coordinator whose StatefulSets lookup can see (without cluster access it sees none, and
nothing is judged added). */}}
{{- define "citus.workerChange" -}}
{{- $keep := list -}}
{{- range $w := .Values.workers -}}
{{- $keep = append $keep (toString $w.citusGroup) -}}
{{- end -}}
{{- $added := list -}}
{{- $removed := list -}}
{{- if and .Release.IsUpgrade .Values.coordinator.enabled -}}
{{- $existing := dict -}}
{{- $sets := lookup "apps/v1" "StatefulSet" .Release.Namespace "" -}}
{{- range $s := (default (list) (get (default (dict) $sets) "items")) -}}
{{- $l := default (dict) $s.metadata.labels -}}
{{- if and (eq (toString (get $l "app.kubernetes.io/instance")) $.Release.Name) (eq (toString (get $l "cluster-name")) $.Values.clusterName) (hasKey $l "citus-group") -}}
{{- $_ := set $existing (toString (get $l "citus-group")) true -}}
{{- end -}}
{{- end -}}
{{- if hasKey $existing "0" -}}
{{- range $id := $keep -}}
{{- if not (hasKey $existing $id) -}}
{{- $added = append $added $id -}}
{{- end -}}
{{- end -}}
{{- range $id := keys $existing | sortAlpha -}}
{{- if and (ne $id "0") (not (has $id $keep)) -}}
{{- $removed = append $removed $id -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson (dict "keep" $keep "added" $added "removed" $removed) -}}
{{- end -}}

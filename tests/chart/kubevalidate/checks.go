package main

import (
	"fmt"
	"net"
	"path"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// checker collects the problems of one object, each prefixed with the field path.
type checker struct {
	name     string
	problems []string
}

func (c *checker) fail(field, format string, args ...any) {
	c.problems = append(c.problems, field+": "+fmt.Sprintf(format, args...))
}

func (c *checker) errs(field string, msgs []string) {
	for _, m := range msgs {
		c.fail(field, "%s", m)
	}
}

func check(c *checker, obj any) {
	switch o := obj.(type) {
	case *corev1.Service:
		c.meta(o.ObjectMeta, validation.IsDNS1035Label)
		c.service(o)
	case *corev1.Secret:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		for k := range o.Data {
			c.errs("data["+k+"]", validation.IsConfigMapKey(k))
		}
	case *corev1.ConfigMap:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		for k := range o.Data {
			c.errs("data["+k+"]", validation.IsConfigMapKey(k))
		}
	case *corev1.ServiceAccount:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
	case *corev1.PersistentVolumeClaim:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.claimSpec("spec", &o.Spec)
	case *corev1.Pod:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.podSpec("spec", &o.Spec, nil)
		if p := o.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
			c.fail("spec.restartPolicy", "a one-shot pod needs Never or OnFailure, got %q", p)
		}
	case *appsv1.StatefulSet:
		c.meta(o.ObjectMeta, validation.IsDNS1123Label)
		c.statefulSet(o)
	case *batchv1.Job:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.labels("spec.template.metadata.labels", o.Spec.Template.Labels)
		c.podSpec("spec.template.spec", &o.Spec.Template.Spec, nil)
		if p := o.Spec.Template.Spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
			c.fail("spec.template.spec.restartPolicy", "a Job needs Never or OnFailure, got %q", p)
		}
		if o.Spec.BackoffLimit != nil && *o.Spec.BackoffLimit < 0 {
			c.fail("spec.backoffLimit", "must be >= 0")
		}
	case *policyv1.PodDisruptionBudget:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		if (o.Spec.MinAvailable == nil) == (o.Spec.MaxUnavailable == nil) {
			c.fail("spec", "exactly one of minAvailable and maxUnavailable")
		}
		c.selector("spec.selector", o.Spec.Selector)
	case *networkingv1.NetworkPolicy:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.networkPolicy(o)
	case *rbacv1.Role:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.rules(o.Rules)
	case *rbacv1.ClusterRole:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.rules(o.Rules)
	case *rbacv1.RoleBinding:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.binding(o.RoleRef, o.Subjects, true)
	case *rbacv1.ClusterRoleBinding:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.binding(o.RoleRef, o.Subjects, false)
	case *Certificate:
		c.meta(o.ObjectMeta, validation.IsDNS1123Subdomain)
		c.certificate(o)
	}
}

func (c *checker) meta(m metav1.ObjectMeta, nameCheck func(string) []string) {
	c.name = m.Name
	if m.Name == "" {
		c.fail("metadata.name", "required")
	} else {
		c.errs("metadata.name", nameCheck(m.Name))
	}
	if m.Namespace != "" {
		c.errs("metadata.namespace", validation.IsDNS1123Label(m.Namespace))
	}
	c.labels("metadata.labels", m.Labels)
	for k := range m.Annotations {
		c.errs("metadata.annotations["+k+"]", validation.IsQualifiedName(strings.ToLower(k)))
	}
}

func (c *checker) labels(field string, l map[string]string) {
	for k, v := range l {
		c.errs(field+"["+k+"]", validation.IsQualifiedName(k))
		c.errs(field+"["+k+"]", validation.IsValidLabelValue(v))
	}
}

func (c *checker) selector(field string, s *metav1.LabelSelector) labels.Selector {
	if s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0) {
		c.fail(field, "an empty selector selects every pod of the namespace")
		return nil
	}
	c.labels(field+".matchLabels", s.MatchLabels)
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		c.fail(field, "%v", err)
		return nil
	}
	return sel
}

func (c *checker) statefulSet(s *appsv1.StatefulSet) {
	if s.Spec.ServiceName == "" {
		c.fail("spec.serviceName", "required: the headless service that gives the pods DNS names")
	}
	if s.Spec.Replicas != nil && *s.Spec.Replicas < 0 {
		c.fail("spec.replicas", "must be >= 0")
	}
	c.labels("spec.template.metadata.labels", s.Spec.Template.Labels)
	if sel := c.selector("spec.selector", s.Spec.Selector); sel != nil &&
		!sel.Matches(labels.Set(s.Spec.Template.Labels)) {
		c.fail("spec.template.metadata.labels", "do not match spec.selector %s", sel)
	}
	claims := map[string]bool{}
	for i, t := range s.Spec.VolumeClaimTemplates {
		f := fmt.Sprintf("spec.volumeClaimTemplates[%d]", i)
		c.errs(f+".metadata.name", validation.IsDNS1123Label(t.Name))
		c.labels(f+".metadata.labels", t.Labels)
		claims[t.Name] = true
		c.claimSpec(f+".spec", &t.Spec)
	}
	c.podSpec("spec.template.spec", &s.Spec.Template.Spec, claims)
	if p := s.Spec.Template.Spec.RestartPolicy; p != "" && p != corev1.RestartPolicyAlways {
		c.fail("spec.template.spec.restartPolicy", "a StatefulSet needs Always, got %q", p)
	}
}

func (c *checker) claimSpec(f string, s *corev1.PersistentVolumeClaimSpec) {
	if len(s.AccessModes) == 0 {
		c.fail(f+".accessModes", "required")
	}
	for i, m := range s.AccessModes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod:
		default:
			c.fail(fmt.Sprintf("%s.accessModes[%d]", f, i), "unknown access mode %q", m)
		}
	}
	if q, ok := s.Resources.Requests[corev1.ResourceStorage]; !ok || q.IsZero() {
		c.fail(f+".resources.requests.storage", "required and > 0")
	}
}

// projected: what the API server checks of a projected volume's sources (names, keys,
// relative paths) and that no two sources write the same file ("conflicting duplicate
// paths").
func (c *checker) projected(f string, p *corev1.ProjectedVolumeSource) {
	if len(p.Sources) == 0 {
		c.fail(f+".sources", "at least one source")
	}
	files := map[string]bool{}
	item := func(sf string, key, p string) {
		c.errs(sf+".key", validation.IsConfigMapKey(key))
		if p == "" || path.IsAbs(p) || strings.HasPrefix(p, "..") || strings.Contains(p, "/../") {
			c.fail(sf+".path", "must be a relative path without '..', got %q", p)
		}
		if files[p] {
			c.fail(sf+".path", "conflicting duplicate path %q", p)
		}
		files[p] = true
	}
	for i, s := range p.Sources {
		sf := fmt.Sprintf("%s.sources[%d]", f, i)
		switch {
		case s.Secret != nil:
			if s.Secret.Name == "" {
				c.fail(sf+".secret.name", "required")
			}
			for j, it := range s.Secret.Items {
				item(fmt.Sprintf("%s.secret.items[%d]", sf, j), it.Key, it.Path)
			}
		case s.ConfigMap != nil:
			if s.ConfigMap.Name == "" {
				c.fail(sf+".configMap.name", "required")
			}
			for j, it := range s.ConfigMap.Items {
				item(fmt.Sprintf("%s.configMap.items[%d]", sf, j), it.Key, it.Path)
			}
		}
	}
}

// podSpec: container and volume wiring. extraVolumes are names provided by
// volumeClaimTemplates.
func (c *checker) podSpec(field string, p *corev1.PodSpec, extraVolumes map[string]bool) {
	volumes := map[string]bool{}
	for k := range extraVolumes {
		volumes[k] = true
	}
	for i, v := range p.Volumes {
		f := fmt.Sprintf("%s.volumes[%d]", field, i)
		c.errs(f+".name", validation.IsDNS1123Label(v.Name))
		if volumes[v.Name] {
			c.fail(f+".name", "duplicate volume %q", v.Name)
		}
		volumes[v.Name] = true
		if n := countSet(v.VolumeSource); n != 1 {
			c.fail(f, "exactly one volume source needed, found %d", n)
		}
		if v.Secret != nil && v.Secret.SecretName == "" {
			c.fail(f+".secret.secretName", "required")
		}
		if v.ConfigMap != nil && v.ConfigMap.Name == "" {
			c.fail(f+".configMap.name", "required")
		}
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "" {
			c.fail(f+".persistentVolumeClaim.claimName", "required")
		}
		if v.Projected != nil {
			c.projected(f+".projected", v.Projected)
		}
		if v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.Sign() <= 0 {
			c.fail(f+".emptyDir.sizeLimit", "must be > 0")
		}
	}
	if len(p.Containers) == 0 {
		c.fail(field+".containers", "at least one container")
	}
	names := map[string]bool{}
	for i := range p.Containers {
		ct := &p.Containers[i]
		f := fmt.Sprintf("%s.containers[%d]", field, i)
		c.errs(f+".name", validation.IsDNS1123Label(ct.Name))
		if names[ct.Name] {
			c.fail(f+".name", "duplicate container %q", ct.Name)
		}
		names[ct.Name] = true
		c.container(f, ct, volumes)
	}
	if p.SecurityContext != nil && p.SecurityContext.RunAsUser != nil && *p.SecurityContext.RunAsUser == 0 &&
		p.SecurityContext.RunAsNonRoot != nil && *p.SecurityContext.RunAsNonRoot {
		c.fail(field+".securityContext", "runAsNonRoot with runAsUser 0 can never start")
	}
	for i, t := range p.TopologySpreadConstraints {
		f := fmt.Sprintf("%s.topologySpreadConstraints[%d]", field, i)
		if t.MaxSkew < 1 {
			c.fail(f+".maxSkew", "must be >= 1")
		}
		if t.TopologyKey == "" {
			c.fail(f+".topologyKey", "required")
		}
	}
}

func (c *checker) container(f string, ct *corev1.Container, volumes map[string]bool) {
	if ct.Image == "" {
		c.fail(f+".image", "required")
	}
	switch ct.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		c.fail(f+".imagePullPolicy", "unknown policy %q", ct.ImagePullPolicy)
	}
	ports := map[string]bool{}
	for j, p := range ct.Ports {
		pf := fmt.Sprintf("%s.ports[%d]", f, j)
		c.errs(pf+".containerPort", validation.IsValidPortNum(int(p.ContainerPort)))
		if p.Name != "" {
			c.errs(pf+".name", validation.IsValidPortName(p.Name))
			if ports[p.Name] {
				c.fail(pf+".name", "duplicate port name %q", p.Name)
			}
			ports[p.Name] = true
		}
	}
	env := map[string]bool{}
	for j, e := range ct.Env {
		ef := fmt.Sprintf("%s.env[%d]", f, j)
		c.errs(ef+".name", validation.IsEnvVarName(e.Name))
		if env[e.Name] {
			c.fail(ef+".name", "duplicate variable %q (the last one would silently win)", e.Name)
		}
		env[e.Name] = true
		if e.Value != "" && e.ValueFrom != nil {
			c.fail(ef, "value and valueFrom are exclusive")
		}
	}
	paths := map[string]bool{}
	for j, m := range ct.VolumeMounts {
		mf := fmt.Sprintf("%s.volumeMounts[%d]", f, j)
		if !volumes[m.Name] {
			c.fail(mf+".name", "no volume named %q", m.Name)
		}
		if !path.IsAbs(m.MountPath) {
			c.fail(mf+".mountPath", "must be absolute, got %q", m.MountPath)
		}
		if paths[m.MountPath] {
			c.fail(mf+".mountPath", "mounted twice: %q", m.MountPath)
		}
		paths[m.MountPath] = true
	}
	for name, probe := range map[string]*corev1.Probe{"readinessProbe": ct.ReadinessProbe,
		"livenessProbe": ct.LivenessProbe, "startupProbe": ct.StartupProbe} {
		if probe == nil {
			continue
		}
		pf := f + "." + name
		if n := countSet(probe.ProbeHandler); n != 1 {
			c.fail(pf, "exactly one handler needed, found %d", n)
		}
		if probe.HTTPGet != nil {
			c.port(pf+".httpGet.port", probe.HTTPGet.Port, ports)
		}
		if probe.TimeoutSeconds < 0 || probe.PeriodSeconds < 0 || probe.FailureThreshold < 0 {
			c.fail(pf, "negative timing")
		}
	}
	if sc := ct.SecurityContext; sc != nil && sc.Capabilities != nil {
		for _, cp := range append(append([]corev1.Capability{}, sc.Capabilities.Add...), sc.Capabilities.Drop...) {
			s := string(cp)
			if s != strings.ToUpper(s) || strings.HasPrefix(s, "CAP_") {
				c.fail(f+".securityContext.capabilities", "%q: capabilities are upper case without CAP_", s)
			}
		}
	}
}

func (c *checker) port(f string, p intstr.IntOrString, named map[string]bool) {
	if p.Type == intstr.String {
		if !named[p.StrVal] {
			c.fail(f, "no container port named %q", p.StrVal)
		}
		return
	}
	c.errs(f, validation.IsValidPortNum(p.IntValue()))
}

func (c *checker) service(s *corev1.Service) {
	switch s.Spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer:
	default:
		c.fail("spec.type", "unexpected type %q", s.Spec.Type)
	}
	if s.Spec.ClusterIP == corev1.ClusterIPNone && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
		c.fail("spec.clusterIP", "a headless service must be of type ClusterIP")
	}
	if len(s.Spec.Ports) == 0 && s.Spec.ClusterIP != corev1.ClusterIPNone {
		c.fail("spec.ports", "required unless the service is headless")
	}
	names := map[string]bool{}
	for i, p := range s.Spec.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		c.errs(f+".port", validation.IsValidPortNum(int(p.Port)))
		if len(s.Spec.Ports) > 1 && p.Name == "" {
			c.fail(f+".name", "required when a service has several ports")
		}
		if p.Name != "" {
			c.errs(f+".name", validation.IsDNS1123Label(p.Name))
			if names[p.Name] {
				c.fail(f+".name", "duplicate %q", p.Name)
			}
			names[p.Name] = true
		}
		if p.TargetPort.Type == intstr.String {
			c.errs(f+".targetPort", validation.IsValidPortName(p.TargetPort.StrVal))
		} else if p.TargetPort.IntValue() != 0 {
			c.errs(f+".targetPort", validation.IsValidPortNum(p.TargetPort.IntValue()))
		}
	}
	c.labels("spec.selector", s.Spec.Selector)
}

var knownVerbs = map[string]bool{"get": true, "list": true, "watch": true, "create": true, "update": true,
	"patch": true, "delete": true, "deletecollection": true, "*": true}

func (c *checker) rules(rules []rbacv1.PolicyRule) {
	for i, r := range rules {
		f := fmt.Sprintf("rules[%d]", i)
		if len(r.Verbs) == 0 {
			c.fail(f+".verbs", "required")
		}
		for _, v := range r.Verbs {
			if !knownVerbs[v] {
				c.fail(f+".verbs", "unknown verb %q", v)
			}
		}
		if len(r.NonResourceURLs) == 0 && (len(r.APIGroups) == 0 || len(r.Resources) == 0) {
			c.fail(f, "apiGroups and resources are required")
		}
	}
}

func (c *checker) binding(ref rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool) {
	if ref.APIGroup != rbacv1.GroupName {
		c.fail("roleRef.apiGroup", "must be %s", rbacv1.GroupName)
	}
	if ref.Kind != "ClusterRole" && !(namespaced && ref.Kind == "Role") {
		c.fail("roleRef.kind", "unexpected %q", ref.Kind)
	}
	if ref.Name == "" {
		c.fail("roleRef.name", "required")
	}
	if len(subjects) == 0 {
		c.fail("subjects", "at least one")
	}
	for i, s := range subjects {
		f := fmt.Sprintf("subjects[%d]", i)
		if s.Kind == rbacv1.ServiceAccountKind && s.Namespace == "" {
			c.fail(f+".namespace", "required for a ServiceAccount")
		}
		if s.Name == "" {
			c.fail(f+".name", "required")
		}
	}
}

func (c *checker) certificate(o *Certificate) {
	if o.Spec.SecretName == "" {
		c.fail("spec.secretName", "required")
	}
	if o.Spec.IssuerRef.Name == "" {
		c.fail("spec.issuerRef.name", "required")
	}
	if len(o.Spec.DNSNames) == 0 && o.Spec.CommonName == "" {
		c.fail("spec.dnsNames", "a certificate needs at least one name")
	}
	for i, n := range o.Spec.DNSNames {
		f := fmt.Sprintf("spec.dnsNames[%d]", i)
		if strings.HasPrefix(n, "*.") {
			c.errs(f, validation.IsWildcardDNS1123Subdomain(n))
		} else {
			c.errs(f, validation.IsDNS1123Subdomain(n))
		}
	}
}

// countSet counts the non-nil pointer fields of a union struct (VolumeSource, ProbeHandler).
func countSet(union any) int {
	v := reflect.ValueOf(union)
	n := 0
	for i := 0; i < v.NumField(); i++ {
		if f := v.Field(i); f.Kind() == reflect.Pointer && !f.IsNil() {
			n++
		}
	}
	return n
}

// networkPolicy: what the API server's validation checks (selectors, peers, ports, CIDRs),
// plus a policy type for every rule list present.
func (c *checker) networkPolicy(p *networkingv1.NetworkPolicy) {
	c.selector("spec.podSelector", &p.Spec.PodSelector)
	types := map[networkingv1.PolicyType]bool{}
	for i, t := range p.Spec.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			c.fail(fmt.Sprintf("spec.policyTypes[%d]", i), "unknown policy type %q", t)
		}
		types[t] = true
	}
	if len(p.Spec.Egress) > 0 && len(p.Spec.PolicyTypes) > 0 && !types[networkingv1.PolicyTypeEgress] {
		c.fail("spec.policyTypes", "egress rules without the Egress policy type are ignored")
	}
	for i, r := range p.Spec.Ingress {
		f := fmt.Sprintf("spec.ingress[%d]", i)
		c.policyPorts(f+".ports", r.Ports)
		for j, peer := range r.From {
			c.policyPeer(fmt.Sprintf("%s.from[%d]", f, j), peer)
		}
	}
	for i, r := range p.Spec.Egress {
		f := fmt.Sprintf("spec.egress[%d]", i)
		c.policyPorts(f+".ports", r.Ports)
		for j, peer := range r.To {
			c.policyPeer(fmt.Sprintf("%s.to[%d]", f, j), peer)
		}
	}
}

func (c *checker) policyPorts(f string, ports []networkingv1.NetworkPolicyPort) {
	for i, p := range ports {
		pf := fmt.Sprintf("%s[%d]", f, i)
		if p.Protocol != nil {
			switch *p.Protocol {
			case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
			default:
				c.fail(pf+".protocol", "unknown protocol %q", *p.Protocol)
			}
		}
		if p.Port != nil {
			if p.Port.Type == intstr.String {
				c.errs(pf+".port", validation.IsValidPortName(p.Port.StrVal))
			} else {
				c.errs(pf+".port", validation.IsValidPortNum(p.Port.IntValue()))
			}
		}
		if p.EndPort != nil && (p.Port == nil || p.Port.Type == intstr.String || int(*p.EndPort) < p.Port.IntValue()) {
			c.fail(pf+".endPort", "needs a numeric port not above it")
		}
	}
}

func (c *checker) policyPeer(f string, p networkingv1.NetworkPolicyPeer) {
	set := 0
	for _, s := range []*metav1.LabelSelector{p.PodSelector, p.NamespaceSelector} {
		if s != nil {
			set++
			c.labels(f+".matchLabels", s.MatchLabels)
			if _, err := metav1.LabelSelectorAsSelector(s); err != nil {
				c.fail(f, "%v", err)
			}
		}
	}
	if p.IPBlock != nil {
		if set > 0 {
			c.fail(f, "ipBlock cannot be combined with selectors")
		}
		_, cidr, err := net.ParseCIDR(p.IPBlock.CIDR)
		if err != nil {
			c.fail(f+".ipBlock.cidr", "%v", err)
			return
		}
		for i, e := range p.IPBlock.Except {
			ip, _, err := net.ParseCIDR(e)
			if err != nil || !cidr.Contains(ip) {
				c.fail(fmt.Sprintf("%s.ipBlock.except[%d]", f, i), "must be a CIDR inside %s", p.IPBlock.CIDR)
			}
		}
		set++
	}
	if set == 0 {
		c.fail(f, "a peer needs podSelector, namespaceSelector or ipBlock")
	}
}

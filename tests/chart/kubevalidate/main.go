// kubevalidate checks rendered Kubernetes manifests against the API's Go types.
//
// Usage: kubevalidate FILE... ("-" reads stdin)
//
// Every YAML document is decoded strictly into the typed object of its apiVersion/kind: an
// unknown or misspelled field, a duplicate field or a wrong type is an error, as is a kind
// this tool has no type for. Then a few checks the API server would make are run (names,
// labels, selectors matching templates, volume mounts naming volumes, probe ports, ...).
// It prints one line per problem and exits 1 when there is any, 0 otherwise.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// newObject returns an empty typed object for apiVersion/kind, or nil when unknown.
func newObject(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/Service":
		return &corev1.Service{}
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1/Pod":
		return &corev1.Pod{}
	case "apps/v1/StatefulSet":
		return &appsv1.StatefulSet{}
	case "batch/v1/Job":
		return &batchv1.Job{}
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1/NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "rbac.authorization.k8s.io/v1/Role":
		return &rbacv1.Role{}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		return &rbacv1.RoleBinding{}
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		return &rbacv1.ClusterRole{}
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		return &rbacv1.ClusterRoleBinding{}
	case "cert-manager.io/v1/Certificate":
		return &Certificate{}
	}
	return nil
}

// document is one YAML document of an input file.
type document struct {
	source string
	index  int
	data   []byte
}

func readDocuments(name string, r io.Reader) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []document
	for i := 0; ; i++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if isBlank(data) {
			continue
		}
		docs = append(docs, document{source: name, index: i, data: data})
	}
}

// isBlank: only comments and whitespace (helm leaves such documents behind disabled templates).
func isBlank(data []byte) bool {
	for _, line := range bytes.Split(data, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' && string(t) != "---" {
			return false
		}
	}
	return true
}

// validate decodes one document strictly and checks it; it returns the object's identity
// ("Kind/name") and every problem found.
func validate(doc document) (string, []string) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc.data, &tm); err != nil {
		return "?", []string{"not YAML: " + err.Error()}
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return "?", []string{"apiVersion and kind are required"}
	}
	obj := newObject(tm.APIVersion, tm.Kind)
	if obj == nil {
		return tm.Kind, []string{fmt.Sprintf("no typed schema for apiVersion %q kind %q", tm.APIVersion, tm.Kind)}
	}
	if err := yaml.UnmarshalStrict(doc.data, obj); err != nil {
		return tm.Kind, []string{"strict decoding: " + err.Error()}
	}
	c := &checker{}
	check(c, obj)
	return tm.Kind + "/" + c.name, c.problems
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kubevalidate FILE... (- for stdin)")
		os.Exit(2)
	}
	var docs []document
	for _, name := range os.Args[1:] {
		var r io.Reader
		if name == "-" {
			r = os.Stdin
		} else {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "error:", err)
				os.Exit(2)
			}
			defer f.Close()
			r = f
		}
		d, err := readDocuments(name, r)
		if err != nil {
			fmt.Fprintln(os.Stderr, "error:", err)
			os.Exit(1)
		}
		docs = append(docs, d...)
	}
	failed := 0
	for _, doc := range docs {
		id, problems := validate(doc)
		for _, p := range problems {
			fmt.Printf("INVALID %s (%s document %d): %s\n", id, doc.source, doc.index, p)
		}
		if len(problems) > 0 {
			failed++
		} else {
			fmt.Printf("ok %s\n", id)
		}
	}
	fmt.Printf("%d objects, %d invalid\n", len(docs), failed)
	if failed > 0 || len(docs) == 0 {
		if len(docs) == 0 {
			fmt.Println("no objects found")
		}
		os.Exit(1)
	}
}

// Certificate is the part of cert-manager's cert-manager.io/v1 Certificate the chart uses;
// cert-manager's module is not needed for that and would pull in much more.
type Certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              CertificateSpec `json:"spec"`
}

type CertificateSpec struct {
	SecretName  string                 `json:"secretName"`
	CommonName  string                 `json:"commonName,omitempty"`
	Duration    *metav1.Duration       `json:"duration,omitempty"`
	RenewBefore *metav1.Duration       `json:"renewBefore,omitempty"`
	DNSNames    []string               `json:"dnsNames,omitempty"`
	IPAddresses []string               `json:"ipAddresses,omitempty"`
	Usages      []string               `json:"usages,omitempty"`
	PrivateKey  *CertificatePrivateKey `json:"privateKey,omitempty"`
	IssuerRef   IssuerReference        `json:"issuerRef"`
}

type CertificatePrivateKey struct {
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
	RotationPolicy string `json:"rotationPolicy,omitempty"`
}

type IssuerReference struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

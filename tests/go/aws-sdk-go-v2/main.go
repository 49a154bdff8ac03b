// Command aws-sdk-go-v2-session runs a session with the AWS SDK for Go v2 configured by nothing
// but the environment an agent gets (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_STS, AWS_REGION, AWS_ROLE_ARN,
// AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_SESSION_NAME): STS web identity, S3 create-bucket, put,
// list, get, and DynamoDB ListTables. It prints one JSON line per step ({"step", "ok", "code",
// "message"}) and exits 1 at the first failed step.
//
// Usage: aws-sdk-go-v2-session BUCKET
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

const key = "chaperone/go-session.txt"
const content = "from the AWS SDK for Go v2"

type step struct {
	Step    string  `json:"step"`
	OK      bool    `json:"ok"`
	Code    *string `json:"code,omitempty"`
	Message *string `json:"message,omitempty"`
}

func report(name string, err error) {
	out := step{Step: name, OK: err == nil}
	if err != nil {
		code, message := "ClientError", err.Error()
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) {
			code = apiErr.ErrorCode()
		}
		out.Code, out.Message = &code, &message
	}
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	if err != nil {
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: aws-sdk-go-v2-session BUCKET")
		os.Exit(2)
	}
	bucket := os.Args[1]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		report("config", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err == nil && (creds.SessionToken == "" || creds.Source == "") {
		err = fmt.Errorf("credentials from %q carry no session token", creds.Source)
	}
	if err == nil && !strings.Contains(creds.Source, "WebIdentity") {
		err = fmt.Errorf("credentials came from %q, not web identity", creds.Source)
	}
	report("web-identity", err)

	client := s3.NewFromConfig(cfg)
	_, err = client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	report("create-bucket", err)

	_, err = client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket),
		Key:    aws.String(key),
		Body:   strings.NewReader(content),
	})
	report("put", err)

	listed, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err == nil {
		found := false
		for _, object := range listed.Contents {
			found = found || aws.ToString(object.Key) == key
		}
		if !found {
			err = fmt.Errorf("ObjectNotListed: %s is not in the listing of %s", key, bucket)
		}
	}
	report("list", err)

	got, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err == nil {
		var body []byte
		body, err = io.ReadAll(got.Body)
		got.Body.Close()
		if err == nil && string(body) != content {
			err = fmt.Errorf("ContentMismatch: got %q", body)
		}
	}
	report("get", err)

	_, err = dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{})
	report("dynamodb-list-tables", err)
}

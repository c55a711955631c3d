package client_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/fieldseal/fieldseal/client"
)

// A record stored and read back. Set FIELDSEAL_URL, TOKEN and KEY as
// `fieldseal dev` prints them.
func Example() {
	c := client.New(os.Getenv("FIELDSEAL_URL"), os.Getenv("TOKEN"), nil)
	key := os.Getenv("KEY") // 32 random bytes, padded standard base64: keep it safe, it is the only way back
	ctx := context.Background()

	rec, err := c.CreateRecord(ctx, key, client.RecordInput{
		Collection: "patients",
		Public:     map[string]string{"ward": "3B"},
		Secret:     map[string]string{"name": "Ada", "diagnosis": "…"},
	})
	if err != nil {
		log.Fatal(err)
	}
	back, err := c.GetRecord(ctx, rec.ID.String(), key)
	if client.Code(err) == "wrong_key" {
		log.Fatal("that is not this subject's key")
	} else if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(back.Secret))
}

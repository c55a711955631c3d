package fieldseal

// Audit actions, one per kind of work.
const (
	ActionCreate     = "record.create"
	ActionRead       = "record.read"
	ActionList       = "record.list"
	ActionReplace    = "record.replace"
	ActionDelete     = "record.delete"
	ActionCiphertext = "record.ciphertext"
	ActionExport     = "records.export"
	ActionRotate     = "key.rotate"
	ActionVerify     = "key.verify"
)
